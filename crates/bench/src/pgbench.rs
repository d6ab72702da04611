//! pgbench against the managed cluster.

use anyhow::Result;
use trove_guestagent::postgres::{Cluster, run_checked};

/// Runs pgbench as the cluster's OS user against `cluster` over its unix socket; returns its report.
pub async fn pgbench(cluster: &Cluster, args: &[&str]) -> Result<String> {
    let spec = cluster.spec();
    let mut cmd = cluster.runner().command(cluster.bins().path("pgbench"));
    cmd.arg("-h")
        .arg(&spec.socket_dir)
        .arg("-p")
        .arg(spec.port.to_string())
        .args(["-U", "postgres"])
        .args(args)
        .arg("postgres");
    run_checked(&mut cmd, &format!("pgbench {args:?}"))
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `tps = 1234.5 (without initial connection time)` from pgbench's report.
pub fn parse_tps(report: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
