//! One point-in-time recovery in place through the API, timed from the moment the POST is sent
//! until `GET /instances/{id}` shows the instance ACTIVE again with no fault, and split at each
//! end with the recovery's phase history.
//!
//! Every instant compared is on this machine: the POST and the polls are timed here
//! (`Utc::now()`), the phase history's `started`/`ended` are the control database's `now()` when
//! the taskmanager (conductor) recorded a report, on the same host and clock.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use trove_e2e::{Stack, TENANT_A, TOKEN_A, rfc3339, time_of};
use uuid::Uuid;

/// How long one recovery may take before the run is abandoned.
const LIMIT: Duration = Duration::from_secs(1800);
/// A POST refused as busy (422) right after the previous run is tried again this often …
const BUSY_RETRY: Duration = Duration::from_millis(500);
/// … this many times.
const BUSY_TRIES: usize = 120;

/// The phases the control plane records before the guest reports.
const CONTROL_PHASES: [&str; 2] = ["queued", "dispatched"];

/// What one recovery through the API measured, in seconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiRun {
    /// POST sent → GET shows ACTIVE with no fault and no running recovery.
    pub total_s: f64,
    /// POST sent → its 202 received.
    pub accepted_s: f64,
    /// POST sent → the recovery recorded (its `queued` phase started): the API's own share.
    pub recorded_s: f64,
    /// POST sent → the guest's first phase started (the conductor recorded its first report).
    pub start_overhead_s: f64,
    /// The guest's first phase started → its last phase ended (the conductor recorded its final
    /// report).
    pub guest_span_s: f64,
    /// The guest's last phase ended → GET shows ACTIVE.
    pub end_overhead_s: f64,
    /// The guest's own wall time of the recovery (`outcome.duration_ms`).
    pub guest_s: f64,
    /// Each recorded phase and its duration.
    pub phases: Vec<(String, f64)>,
    pub stop_lsn: String,
    pub new_timeline: Option<u32>,
    /// Where the data came from (`outcome.source`): `rewind` or `backup`.
    pub source: Option<String>,
}

/// Recovers `instance` in place to `target` along timeline 1 (the WAL the driver and PostgreSQL
/// alone replay) and measures it.
/// The instance is polled every `poll` until it shows ACTIVE again.
pub async fn recover(
    stack: &Stack,
    instance: Uuid,
    target: DateTime<Utc>,
    poll: Duration,
) -> Result<ApiRun> {
    // Outside the timing: the previous run's instance settled and healthy.
    stack.wait_active(instance).await?;
    let url = format!(
        "{}/v1.0/{TENANT_A}/instances/{instance}/recover",
        stack.api_url
    );
    let body = json!({"recovery": {"point_in_time": rfc3339(target), "timeline": 1}});
    let mut tries = 0;
    let (sent, accepted, answer) = loop {
        let sent = Utc::now();
        let resp = stack
            .http
            .post(&url)
            .header("X-Auth-Token", TOKEN_A)
            .json(&body)
            .send()
            .await
            .context("POST …/recover")?;
        let accepted = Utc::now();
        let status = resp.status();
        let answer: Value = resp.json().await.context("the recover answer")?;
        if status == StatusCode::ACCEPTED {
            break (sent, accepted, answer);
        }
        // Nothing is written when a request is refused; a 422 right after a recovery is the
        // instance's service status catching up, which the timing must not include.
        tries += 1;
        if status != StatusCode::UNPROCESSABLE_ENTITY || tries >= BUSY_TRIES {
            bail!("recover answered {status}: {answer}");
        }
        tokio::time::sleep(BUSY_RETRY).await;
    };
    let recovery = answer["recovery"]["recovery_id"]
        .as_str()
        .context("the 202 names no recovery_id")?
        .to_owned();
    let active = wait_active_again(stack, instance, sent, poll).await?;

    let (status, history) = stack
        .get_a(&format!("/instances/{instance}/recoveries/{recovery}"))
        .await?;
    if status != StatusCode::OK {
        bail!("the recovery history answered {status}: {history}");
    }
    split(&history["recovery"], sent, accepted, active)
}

/// Polls every `poll` until the instance shows ACTIVE, no fault and no recovery; returns when
/// that answer arrived.
async fn wait_active_again(
    stack: &Stack,
    instance: Uuid,
    sent: DateTime<Utc>,
    poll: Duration,
) -> Result<DateTime<Utc>> {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let shown = stack.instance(instance).await?;
        let at = Utc::now();
        let fault = !shown["fault"].is_null();
        let running = !shown["recovery"].is_null();
        match shown["status"].as_str() {
            Some("ACTIVE") if !fault && !running => return Ok(at),
            Some("ACTIVE") if fault && !running => bail!("the recovery failed: {}", shown["fault"]),
            Some("ERROR") => bail!("the instance went to ERROR: {shown}"),
            _ => {}
        }
        if (at - sent).to_std().unwrap_or_default() > LIMIT {
            bail!("the instance was not ACTIVE again within {LIMIT:?}: {shown}");
        }
    }
}

/// Splits the run with the recovery's record (`GET …/recoveries/{rid}`).
fn split(
    record: &Value,
    sent: DateTime<Utc>,
    accepted: DateTime<Utc>,
    active: DateTime<Utc>,
) -> Result<ApiRun> {
    if record["state"] != "COMPLETED" {
        bail!("the recovery is not COMPLETED: {record}");
    }
    let phases = record["phases"]
        .as_array()
        .context("the recovery has no phase history")?;
    let name = |p: &Value| p["phase"].as_str().unwrap_or_default().to_owned();
    let recorded = phases
        .first()
        .filter(|p| name(p) == CONTROL_PHASES[0])
        .and_then(|p| time_of(&p["started"]))
        .context("the history does not start with queued")?;
    let first_guest = phases
        .iter()
        .find(|p| !CONTROL_PHASES.contains(&name(p).as_str()))
        .and_then(|p| time_of(&p["started"]))
        .context("no phase reported by the guest")?;
    let last_end = phases
        .iter()
        .filter_map(|p| time_of(&p["ended"]))
        .max()
        .context("no phase ended")?;
    let outcome = &record["outcome"];
    Ok(ApiRun {
        total_s: secs(active, sent),
        accepted_s: secs(accepted, sent),
        recorded_s: secs(recorded, sent),
        start_overhead_s: secs(first_guest, sent),
        guest_span_s: secs(last_end, first_guest),
        end_overhead_s: secs(active, last_end),
        guest_s: outcome["duration_ms"]
            .as_f64()
            .context("the outcome has no duration_ms")?
            / 1000.0,
        phases: phases
            .iter()
            .map(|p| {
                (
                    name(p),
                    p["duration_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                )
            })
            .collect(),
        stop_lsn: outcome["stop_lsn"].as_str().unwrap_or_default().to_owned(),
        new_timeline: outcome["new_timeline"]
            .as_u64()
            .and_then(|t| u32::try_from(t).ok()),
        source: outcome["source"].as_str().map(str::to_owned),
    })
}

fn secs(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}
