//! trove-bench: on-demand benchmark of the PostgreSQL driver against the object store: backup and
//! restore throughput, RPO under pgbench load, WAL upload volume, and point-in-time recovery wall
//! time from the store against the same recovery from a local directory and against PostgreSQL
//! alone (the floor).
//!
//! One managed cluster ships its WAL to the root's object store (S3 when `TROVE_TEST_S3_*` is set,
//! as `scripts/bench.sh` arranges, else a local directory) while pgbench runs; every 100 ms the
//! primary's flush LSN is sampled against what the shipper has uploaded (`shipped_lsn()`), and
//! the spool's latest commit and the receiver's lag are sampled as before. Then the instance is
//! recovered in place to a time near the end of the load, in turn from the store, from a local
//! store holding the same objects, and (PostgreSQL alone) from local files. Prints a table and one
//! JSON line. Run as root (the driver switches to the `postgres` user itself) or as the `postgres`
//! user; see `scripts/bench.sh`.
//!
//! `trove-bench api` measures the API instead (see [`api`] and `scripts/bench-api.sh`), and
//! `trove-bench overhead` the control plane's overhead on a recovery through the whole stack
//! (see [`overhead`] and `scripts/bench-overhead.sh`), and `trove-bench rewind` a recovery from
//! the delayed copy against a full restore and PostgreSQL alone (see [`rewind`] and
//! `scripts/bench-rewind.sh`).

mod api;
mod args;
mod local;
mod overhead;
mod pgbench;
mod recovery;
mod report;
mod rewind;
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
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("api") {
        argv.next();
        return api::main(argv).await;
    }
    if argv.peek().map(String::as_str) == Some("rewind") {
        argv.next();
        return rewind::main(argv).await;
    }
    if argv.peek().map(String::as_str) == Some("overhead") {
        argv.next();
        return overhead::main(argv).await;
    }
    let Some(args) = args::parse(std::env::args().skip(1))? else {
        return Ok(());
    };
    // Dropping the root stops every server started in it and removes it and its objects in the
    // store (unless --keep), also after an error or Ctrl-C.
    let root = TestRoot::at(args.workdir.clone(), args.keep)?;
    eprintln!("trove-bench: working in {}", root.path().display());
    eprintln!("trove-bench: object store {}", root.store().describe());
    let result = tokio::select! {
        r = run::bench(&root, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    drop(root);
    result
}
