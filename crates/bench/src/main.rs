//! trove-bench: on-demand benchmark of the PostgreSQL driver's RPO under pgbench load and of its point-in-time recovery wall time against PostgreSQL alone (the floor).
//!
//! One managed cluster streams its WAL into a temporary store while pgbench runs; the store's
//! exposure (`now − last commit in the store`, as `scan()` computes it) is sampled every 200 ms.
//! Then the instance is recovered in place to a time near the end of the load with
//! `recover_in_place`, and, alternating with it, PostgreSQL alone replays the same backup and WAL
//! to the same time in a fresh directory. Prints a table and one JSON line. Run as root (the driver
//! switches to the `postgres` user itself) or as the `postgres` user; see `scripts/bench.sh`.

mod args;
mod pgbench;
mod recovery;
mod report;
mod rpo;
mod run;
mod server_log;
mod stats;
mod target;

use anyhow::{Result, anyhow};
use trove_guestagent::testkit::TestRoot;

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("warn");
    let Some(args) = args::parse(std::env::args().skip(1))? else {
        return Ok(());
    };
    // Dropping the root stops every server started in it and removes it (unless --keep), also
    // after an error or Ctrl-C.
    let root = TestRoot::at(args.workdir.clone(), args.keep)?;
    eprintln!("trove-bench: working in {}", root.path().display());
    let result = tokio::select! {
        r = run::bench(&root, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    drop(root);
    result
}
