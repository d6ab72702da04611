//! Closed-loop load: `clients` tasks, each sending its next request as soon as the last one
//! answered, for a warm-up and then a measured window.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::stats::Dist;

/// What one scenario measured.
#[derive(Debug, serde::Serialize)]
pub struct Measured {
    pub name: &'static str,
    pub clients: usize,
    pub requests: usize,
    pub per_sec: f64,
    /// Latency in milliseconds.
    pub latency_ms: Dist,
}

const WARM_UP: Duration = Duration::from_secs(2);

/// Runs `clients` loops over the URLs `url_of(i)` (i counts each client's requests) against
/// `client` with `token`; every answer must be 200.
pub async fn run(
    name: &'static str,
    client: &reqwest::Client,
    token: &str,
    clients: usize,
    secs: u64,
    url_of: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> Result<Measured> {
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let end = measure_from + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, token, url_of) = (client.clone(), token.to_string(), url_of.clone());
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut i = c;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    return anyhow::Ok(samples);
                }
                let resp = client
                    .get(url_of(i))
                    .header("X-Auth-Token", &token)
                    .send()
                    .await?;
                let status = resp.status();
                resp.bytes().await?;
                if status != reqwest::StatusCode::OK {
                    bail!("{name}: answered {status}");
                }
                if sent >= measure_from {
                    samples.push(sent.elapsed().as_secs_f64() * 1e3);
                }
                i += clients;
            }
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    let window = end.saturating_duration_since(measure_from).as_secs_f64();
    let Some(latency_ms) = Dist::of(all.iter().copied()) else {
        bail!("{name}: no request finished in the measured window");
    };
    Ok(Measured {
        name,
        clients,
        requests: all.len(),
        per_sec: all.len() as f64 / window,
        latency_ms,
    })
}
