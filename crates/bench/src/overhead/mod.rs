//! `trove-bench overhead`: the control plane's overhead on a point-in-time recovery in place.
//! The whole stack runs in this process on the real services (trove-api, the taskmanager with
//! its conductor and the guest agent, on RabbitMQ, the control PostgreSQL and the object store the
//! scripts use; the `trove-e2e` harness). An instance is created, loaded with pgbench, backed up
//! and written to through the API; then, run by run in rotating order, the same backup and WAL
//! are recovered to the same target three ways: through the API (POST `…/recover` until the
//! instance shows ACTIVE again), by the driver alone (`recover_in_place` in this process), and by
//! PostgreSQL alone (the floor). The differences are the control plane's and the driver's
//! overhead. See `scripts/bench-overhead.sh`.

pub(crate) mod api_run;
pub(crate) mod args;
mod driver;
mod report;
pub(crate) mod setup;

use anyhow::{Result, anyhow};
use trove_e2e::{ALL, Stack};
use trove_guestagent::testkit::TestRoot;

use crate::recovery::{self, Timed};
use api_run::ApiRun;

/// The three ways, in the order of the first run.
#[derive(Debug, Clone, Copy)]
enum Way {
    Api,
    Driver,
    Floor,
}

const WAYS: [Way; 3] = [Way::Api, Way::Driver, Way::Floor];

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Api => "api",
            Way::Driver => "driver",
            Way::Floor => "floor",
        }
    }
}

/// Every run's figures.
pub struct Runs {
    pub api: Vec<ApiRun>,
    pub driver: Vec<Timed>,
    pub floor: Vec<Timed>,
    pub orders: Vec<String>,
}

pub async fn main(argv: impl Iterator<Item = String>) -> Result<()> {
    let Some(args) = args::parse(argv)? else {
        return Ok(());
    };
    on_stack("overhead", async |stack, root| {
        bench(stack, root, &args).await
    })
    .await
}

/// Starts the whole stack and a bench root sharing its store, announces both (scripts/bench-stack.sh
/// reads those lines to stop what a killed run left running), runs `bench` on them until it ends
/// or Ctrl-C, and tears both down.
pub(crate) async fn on_stack(
    which: &str,
    bench: impl AsyncFnOnce(&Stack, &TestRoot) -> Result<()>,
) -> Result<()> {
    eprintln!("starting the stack ...");
    let stack = Stack::start(ALL).await?;
    // The driver's cluster and the floor's files live here; it shares the stack's store (whose
    // prefix the stack empties at the end) and reads the instance's objects from it.
    let root = TestRoot::sharing_store(&format!("trove-bench-{which}"), stack.store()?)?;
    eprintln!("trove-bench {which}: stack in {}", stack.root().display());
    eprintln!(
        "trove-bench {which}: bench root in {}",
        root.path().display()
    );
    eprintln!(
        "trove-bench {which}: object store {}",
        root.store().describe()
    );
    let result = tokio::select! {
        r = bench(&stack, &root) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    drop(root);
    stack.shutdown().await;
    result
}

async fn bench(stack: &Stack, root: &TestRoot, args: &args::OverheadArgs) -> Result<()> {
    let prepared = setup::prepare(stack, root, args, async |_, _| Ok(())).await?;
    let cluster = root.cluster("driver")?;
    cluster.init().await?;
    cluster.start().await?;

    let mut runs = Runs {
        api: Vec::new(),
        driver: Vec::new(),
        floor: Vec::new(),
        orders: Vec::new(),
    };
    for run in 0..args.runs {
        let mut order = WAYS;
        order.rotate_left(run % WAYS.len());
        runs.orders.push(order.map(Way::label).join(","));
        for way in order {
            eprintln!("run {}: {} ...", run + 1, way.label());
            match way {
                Way::Api => {
                    let poll = std::time::Duration::from_millis(args.poll_ms);
                    let r =
                        api_run::recover(stack, prepared.instance, prepared.target, poll).await?;
                    eprintln!(
                        "run {}: api {:.3} s (start {:.0} ms, end {:.0} ms, guest {:.3} s), stop {}, timeline {:?}",
                        run + 1,
                        r.total_s,
                        r.start_overhead_s * 1e3,
                        r.end_overhead_s * 1e3,
                        r.guest_s,
                        r.stop_lsn,
                        r.new_timeline
                    );
                    runs.api.push(r);
                }
                Way::Driver => {
                    let t = driver::recover(&cluster, root.store(), &prepared).await?;
                    eprintln!(
                        "run {}: driver {:.3} s, stop {}",
                        run + 1,
                        t.total_s,
                        t.stop_lsn
                    );
                    runs.driver.push(t);
                }
                Way::Floor => {
                    let t = recovery::floor(root, &prepared.floor, prepared.target, run).await?;
                    eprintln!(
                        "run {}: floor {:.3} s, stop {}",
                        run + 1,
                        t.total_s,
                        t.stop_lsn
                    );
                    runs.floor.push(t);
                }
            }
        }
    }
    report::print(args, &prepared, root.store().describe(), &runs);
    Ok(())
}
