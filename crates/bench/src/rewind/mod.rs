//! `trove-bench rewind`: a recovery in place to a time inside the rewind window, through the
//! API, against a full restore from the base backup through the API and against PostgreSQL
//! alone restoring the same backup and replaying the same WAL; plus what keeping the delayed
//! copy costs. An instance is created and loaded with pgbench (`--scale 100`: about 1.5 GB),
//! backed up, its rewind window set (the copy is built), then pgbench writes for `--load-secs`;
//! the target is a time between two commits near the end of that load, so the rewind replays
//! the whole load from the copy. See `scripts/bench-rewind.sh`.

mod cost;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{Stack, wait_until};
use trove_guestagent::testkit::TestRoot;
use uuid::Uuid;

use crate::overhead::{api_run, args::OverheadArgs, setup};
use crate::recovery;

const USAGE: &str = "usage: trove-bench rewind [--scale N (100)] [--load-secs N (30)] \
                     [--window-minutes N (30)] [--clients N (4)] [--poll-ms N (10)]";
/// How long the copy may take to be built (pg_basebackup of the whole instance).
const BUILD_LIMIT: Duration = Duration::from_secs(1800);
/// How long the idle cost is sampled.
const IDLE_SAMPLE: Duration = Duration::from_secs(20);

struct RewindArgs {
    load: OverheadArgs,
    window_minutes: u32,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<RewindArgs>> {
    let mut a = RewindArgs {
        load: OverheadArgs {
            scale: 100,
            load_secs: 30,
            runs: 1,
            clients: 4,
            poll_ms: 10,
        },
        window_minutes: 30,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--scale" => a.load.scale = value()?.parse().context("--scale")?,
            "--load-secs" => a.load.load_secs = value()?.parse().context("--load-secs")?,
            "--window-minutes" => {
                a.window_minutes = value()?.parse().context("--window-minutes")?
            }
            "--clients" => a.load.clients = value()?.parse().context("--clients")?,
            "--poll-ms" => a.load.poll_ms = value()?.parse().context("--poll-ms")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.load.scale == 0 || a.load.load_secs < 5 || a.window_minutes == 0 {
        bail!("need --scale ≥ 1, --load-secs ≥ 5, --window-minutes ≥ 1");
    }
    Ok(Some(a))
}

pub async fn main(argv: impl Iterator<Item = String>) -> Result<()> {
    let Some(args) = parse(argv)? else {
        return Ok(());
    };
    crate::overhead::on_stack("rewind", async |stack, root| {
        bench(stack, root, &args).await
    })
    .await
}

/// What keeping the copy cost while the benchmark prepared.
#[derive(Default)]
struct Keeping {
    build_s: f64,
    idle_cpu_share: f64,
    cpu_before_load: f64,
    copy_dir: std::path::PathBuf,
}

async fn bench(stack: &Stack, root: &TestRoot, args: &RewindArgs) -> Result<()> {
    let mut keeping = Keeping::default();
    let window = args.window_minutes;
    let k = &mut keeping;
    let load_started = std::cell::Cell::new(None);
    let prepared = setup::prepare(stack, root, &args.load, async |instance, _server| {
        eprintln!("setting a rewind window of {window} minutes; building the copy ...");
        let started = Instant::now();
        set_window(stack, instance, Some(window)).await?;
        wait_status(stack, instance, "READY", BUILD_LIMIT).await?;
        k.build_s = started.elapsed().as_secs_f64();
        k.copy_dir = stack.instance_dir(instance).join("data.rewind");
        eprintln!(
            "copy built in {:.1} s; sampling its idle cost ...",
            k.build_s
        );
        let before = cost::cpu_secs(&k.copy_dir)?;
        let t = Instant::now();
        // The measurement window itself: the copy's CPU over a fixed span of idleness.
        tokio::time::sleep(IDLE_SAMPLE).await;
        k.idle_cpu_share = (cost::cpu_secs(&k.copy_dir)? - before) / t.elapsed().as_secs_f64();
        k.cpu_before_load = cost::cpu_secs(&k.copy_dir)?;
        load_started.set(Some(Instant::now()));
        Ok(())
    })
    .await?;
    let load_span = load_started
        .get()
        .context("the load never started")?
        .elapsed()
        .as_secs_f64();
    let load_cpu = cost::cpu_secs(&keeping.copy_dir)? - keeping.cpu_before_load;
    let view = rewind_view(stack, prepared.instance).await?;
    let disk = view["disk_bytes"].as_u64().unwrap_or(0);
    let poll = Duration::from_millis(args.load.poll_ms);

    eprintln!("rewind to {} through the API ...", prepared.target);
    let rewound = api_run::recover(stack, prepared.instance, prepared.target, poll).await?;
    if rewound.source.as_deref() != Some("rewind") {
        bail!(
            "the recovery did not use the delayed copy: {:?}",
            rewound.source
        );
    }
    eprintln!("rewind: {:.3} s", rewound.total_s);

    eprintln!("full restore from the base backup through the API (rewind unset) ...");
    set_window(stack, prepared.instance, None).await?;
    wait_status(stack, prepared.instance, "OFF", Duration::from_secs(60)).await?;
    let copy_dir = keeping.copy_dir.clone();
    wait_until(
        "the copy to be removed",
        Duration::from_secs(120),
        || async { Ok((!copy_dir.exists()).then_some(())) },
    )
    .await?;
    let restored = api_run::recover(stack, prepared.instance, prepared.target, poll).await?;
    if restored.source.as_deref() != Some("backup") {
        bail!(
            "the full restore did not restore the backup: {:?}",
            restored.source
        );
    }
    eprintln!("full restore: {:.3} s", restored.total_s);

    eprintln!("PostgreSQL alone on the same backup and WAL ...");
    let floor = recovery::floor(root, &prepared.floor, prepared.target, 0).await?;
    eprintln!("floor: {:.3} s", floor.total_s);

    let phases = |r: &api_run::ApiRun| {
        r.phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!(
        "rewind benchmark: PostgreSQL {}, {:.2} GB of data (pgbench scale {}), {} s of pgbench after the backup ({:.0} tps), window {} min",
        prepared.version,
        prepared.data_bytes as f64 / 1e9,
        args.load.scale,
        args.load.load_secs,
        prepared.tps.unwrap_or(f64::NAN),
        window
    );
    println!("target {} (stop {})", prepared.target, rewound.stop_lsn);
    println!(
        "{:<44} {:>9}",
        "recovery to the target, API call → ACTIVE", "seconds"
    );
    println!(
        "{:<44} {:>9.3}",
        "rewind (delayed copy, gap only)", rewound.total_s
    );
    println!(
        "{:<44} {:>9.3}",
        "full restore (base backup + WAL)", restored.total_s
    );
    println!(
        "{:<44} {:>9.3}",
        "PostgreSQL alone (same backup and WAL)", floor.total_s
    );
    println!("rewind phases: {}", phases(&rewound));
    println!("full restore phases: {}", phases(&restored));
    println!(
        "keeping the copy: built in {:.1} s; disk {:.2} GB; CPU idle {:.2}% of one core, during the load {:.2}% ({:.1} s over {:.0} s)",
        keeping.build_s,
        disk as f64 / 1e9,
        keeping.idle_cpu_share * 100.0,
        load_cpu / load_span * 100.0,
        load_cpu,
        load_span
    );
    println!(
        "{}",
        json!({
            "data_bytes": prepared.data_bytes,
            "load_secs": args.load.load_secs,
            "window_minutes": window,
            "rewind_s": rewound.total_s,
            "full_restore_s": restored.total_s,
            "floor_s": floor.total_s,
            "copy_build_s": keeping.build_s,
            "copy_disk_bytes": disk,
            "copy_idle_cpu_share": keeping.idle_cpu_share,
            "copy_load_cpu_share": load_cpu / load_span,
        })
    );
    Ok(())
}

async fn rewind_view(stack: &Stack, instance: Uuid) -> Result<Value> {
    let (status, v) = stack
        .get_a(&format!("/instances/{instance}/rewind"))
        .await?;
    if status != StatusCode::OK {
        bail!("GET rewind answered {status}: {v}");
    }
    Ok(v["rewind"].clone())
}

async fn set_window(stack: &Stack, instance: Uuid, minutes: Option<u32>) -> Result<()> {
    let path = format!("/instances/{instance}/rewind");
    let (status, v) = match minutes {
        Some(m) => {
            stack
                .call_a(
                    Method::PUT,
                    &path,
                    Some(json!({"rewind": {"window_minutes": m}})),
                )
                .await?
        }
        None => stack.call_a(Method::DELETE, &path, None).await?,
    };
    if status != StatusCode::ACCEPTED {
        bail!("setting the rewind window answered {status}: {v}");
    }
    Ok(())
}

async fn wait_status(stack: &Stack, instance: Uuid, want: &str, limit: Duration) -> Result<()> {
    wait_until(&format!("the copy to be {want}"), limit, || async {
        let v = rewind_view(stack, instance).await?;
        if v["status"] == "FAILED" {
            bail!("the copy failed: {v}");
        }
        Ok((v["status"] == want).then_some(()))
    })
    .await
}
