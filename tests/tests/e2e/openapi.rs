//! The OpenAPI document (`crates/api/openapi.json`) describes exactly the routes the API serves,
//! and the running API survives a property-based fuzzer driven by it: no 5xx, and no response
//! the document does not describe.

use std::{collections::BTreeSet, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_api::routes::{openapi::DOCUMENT, table};
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TOKEN_A,
    fixtures::{backup_row, idle_instance, pg_version},
};
use uuid::Uuid;

/// (METHOD, path) of every operation in the document.
fn documented() -> Result<BTreeSet<(String, String)>> {
    let doc: Value = serde_json::from_str(DOCUMENT).context("openapi.json is not JSON")?;
    let paths = doc["paths"].as_object().context("no paths")?;
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in item
            .as_object()
            .context("a path item is not an object")?
            .keys()
        {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    Ok(ops)
}

/// A concrete URL path for a templated one: the tenant is tenant A, every other segment a name
/// that exists nowhere.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{tenant}" => TENANT_A,
            s if s.starts_with('{') => "no-such-thing",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_exactly_the_routes_served() -> Result<()> {
    let documented = documented()?;
    let routed: BTreeSet<(String, String)> = table()
        .into_iter()
        .map(|r| (r.method, r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}; documented but not routed: {unrouted:?}"
    );

    // The table is what the router is built from; ask the running router to be sure: no
    // documented operation may end in the router's own 404 or 405.
    let stack = Stack::start(API_ONLY).await?;
    for (method, path) in &documented {
        // The health check answers in plain text, as oslo's middleware does.
        if path == "/healthcheck" {
            let resp = stack
                .http
                .get(format!("{}{path}", stack.api_url))
                .send()
                .await?;
            assert_eq!(resp.status(), StatusCode::OK, "{method} {path}");
            continue;
        }
        let method = Method::from_bytes(method.as_bytes())?;
        let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        let (status, resp) = stack
            .call(method.clone(), &concrete(path), Some(TOKEN_A), body)
            .await?;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(
            resp["itemNotFound"]["message"], "The resource could not be found.",
            "{method} {path} is not routed"
        );
    }
    let (status, served) = stack.call(Method::GET, "/openapi.json", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, serde_json::from_str::<Value>(DOCUMENT)?);
    stack.shutdown().await;
    Ok(())
}

/// The fuzzer, installed by `scripts/install-test-tools.sh`; `TROVE_SCHEMATHESIS` overrides.
fn schemathesis() -> PathBuf {
    std::env::var_os("TROVE_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-test/bin/schemathesis")
        })
}

/// An idle instance of tenant A with a completed backup and reported WAL after it, so its window
/// is open and a recovery to `latest` can be planned. Returns it and its backup.
async fn instance_with_history(stack: &Stack) -> Result<(Uuid, Uuid)> {
    let instance = idle_instance(stack, TENANT_A, Some(1)).await?;
    let dsv = pg_version(stack, Some("15")).await?;
    let stop = chrono::Utc::now() - chrono::Duration::minutes(5);
    let wal = Some((1, "0/2000028", "0/2000100"));
    let backup = backup_row(stack, TENANT_A, instance, "COMPLETED", dsv, stop, wal).await?;
    sqlx::query(
        "INSERT INTO wal_timelines (instance_id, timeline, first_segment, last_segment, \
         latest_commit, latest_lsn) VALUES ($1, 1, '000000010000000000000001', \
         '000000010000000000000003', now(), '0/3000060')",
    )
    .bind(instance)
    .execute(&stack.pool)
    .await?;
    Ok((instance, backup))
}

/// What the fuzzer works on, beside what it creates itself.
struct Seeded {
    /// Read only: an instance with a fault and an open window, and its backup.
    shown: Uuid,
    backup: Uuid,
    /// For actions, recoveries and backups, which may leave it busy.
    worked_on: Uuid,
}

/// Rows in every shape the views render: an instance with an address, a fault, a completed
/// backup and reported WAL; one in the middle of a recovery; one to act on.
async fn seed(stack: &Stack) -> Result<Seeded> {
    let (shown, backup) = instance_with_history(stack).await?;
    sqlx::query(
        "INSERT INTO instance_faults (id, instance_id, message, details) \
         VALUES ($1, $2, 'Recovery failed while replaying.', 'details')",
    )
    .bind(Uuid::new_v4())
    .bind(shown)
    .execute(&stack.pool)
    .await?;
    let (recovering, recovering_backup) = instance_with_history(stack).await?;
    sqlx::query("UPDATE instances SET task_id = 112 WHERE id = $1")
        .bind(recovering)
        .execute(&stack.pool)
        .await?;
    sqlx::query(
        "INSERT INTO recoveries (id, instance_id, backup_id, state, phase, progress, deadline) \
         VALUES ($1, $2, $3, 'RUNNING', 'replaying', '{\"bytes_done\": 1}', now() + interval '1 hour')",
    )
    .bind(Uuid::new_v4())
    .bind(recovering)
    .bind(recovering_backup)
    .execute(&stack.pool)
    .await?;
    let (worked_on, _) = instance_with_history(stack).await?;
    Ok(Seeded {
        shown,
        backup,
        worked_on,
    })
}

/// The fuzzer's configuration: tenant A's token and tenant; the seeded rows and the catalogue's
/// names where an operation needs an existing resource to get past its 404 (other operations,
/// and every write's body, get made-up values); a bounded number of examples per operation.
fn config(stack: &Stack, seeded: &Seeded) -> String {
    let Seeded {
        shown,
        backup,
        worked_on,
    } = seeded;
    format!(
        r#"base-url = "{url}"
# Hypothesis' lambda-source cache is not thread-safe (a KeyError, then CPython's "AST constructor
# recursion depth mismatch" under two workers); one worker keeps the run sound.
workers = 1
request-timeout = 10
headers = {{ "X-Auth-Token" = "{TOKEN_A}" }}

[parameters]
"path.tenant" = "{TENANT_A}"

[generation]
max-examples = 25
database = "none"

[phases.stateful]
max-steps = 20

# Trove answers 501 Not Implemented for Trove features trove-rs lacks (incremental backups, other
# actions, updating anything but the name): a documented refusal, not a server fault.
[checks.not_a_server_error]
expected-statuses = ["2xx", "4xx", "501"]

# A rejection of invalid data may also be 413 (the body cap) or 501 (see above).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "501"]

# Semantic refusals cannot be said in JSON Schema: an unknown flavor or a user granted a database
# the create does not list is Trove's 400, whatever the schema accepts.
[checks.positive_data_acceptance]
enabled = false

# Deletes answer 202 and run in the background (Trove's contract): an instance stays visible,
# status SHUTDOWN, until the taskmanager has removed it, and no taskmanager runs here.
[checks.use_after_free]
enabled = false

[[operations]]
include-operation-id = ["showInstance", "showRecoveryWindow", "listInstanceBackups"]
parameters = {{ "path.id" = "{shown}" }}

[[operations]]
include-operation-id = "showBackup"
parameters = {{ "path.id" = "{backup}" }}

[[operations]]
include-operation-id = ["actOnInstance", "recoverInstance", "restoreInstance"]
parameters = {{ "path.id" = "{worked_on}" }}

# A recovery of an instance just created answers 404 for an unknown backup named in the body;
# this check would take that for the new instance going missing.
[[operations]]
include-operation-id = ["recoverInstance", "restoreInstance"]
checks.ensure_resource_availability.enabled = false

[[operations]]
include-operation-id = "createBackup"
parameters = {{ "body.backup.instance" = "{worked_on}" }}

[[operations]]
include-operation-id = ["showDatastore", "listVersions", "showVersion"]
parameters = {{ "path.ds" = "postgresql", "path.version" = "15" }}
"#,
        url = stack.api_url,
    )
}

/// The API alone: every check the fuzzer probes happens in the API before anything leaves it, and
/// a guest would start a real PostgreSQL server for every create the fuzzer gets accepted, which
/// no time bound survives. The seeded rows stand in for what the other daemons would report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_survives_property_based_fuzzing() -> Result<()> {
    let tool = schemathesis();
    if !tool.exists() {
        bail!(
            "the API fuzzer is not installed at {}: run scripts/install-test-tools.sh \
             (scripts/test.sh does), or point TROVE_SCHEMATHESIS at a schemathesis binary",
            tool.display()
        );
    }
    let stack = Stack::start(API_ONLY).await?;
    let seeded = seed(&stack).await?;
    let config_file = stack.root().join("schemathesis.toml");
    std::fs::write(&config_file, config(&stack, &seeded))?;
    let seed = std::env::var("TROVE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| u64::from(Uuid::new_v4().as_fields().0));
    let started = std::time::Instant::now();
    let run = tokio::process::Command::new(&tool)
        .arg("--config-file")
        .arg(&config_file)
        .args(["--no-color", "run", "--seed", &seed.to_string()])
        .arg(format!("{}/openapi.json", stack.api_url))
        .current_dir(stack.root())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .context("the fuzzer ran past its 240 s deadline")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis (seed {seed}, TROVE_FUZZ_SEED={seed} repeats it) took {:.1} s:\n{stdout}\n{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "the fuzzer found failures (seed {seed}):\n{}",
        failures_section(&stdout)
    );
    stack.shutdown().await;
    Ok(())
}

/// The report's FAILURES section alone, bounded: the panic message CI shows last.
fn failures_section(stdout: &str) -> String {
    let from = stdout.find("= FAILURES =").unwrap_or(0);
    let rest = &stdout[from..];
    let to = ["= WARNINGS =", "= SUMMARY ="]
        .iter()
        .filter_map(|h| rest.find(h))
        .min()
        .unwrap_or(rest.len());
    rest[..to].chars().take(4000).collect()
}
