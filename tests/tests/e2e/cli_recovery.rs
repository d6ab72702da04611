//! trove-rs's own `openstack database` commands (the plugin in `clients/osc-plugin`) against the
//! real stack: a restore point, recoveries in place with `--wait` to it, to just before a
//! transaction and to a time, each checked by the rows in the managed database, then the recovery
//! history and the recoverable window as the CLI prints them. A refused request prints why, exits
//! non-zero and changes nothing; a recovery that fails makes `--wait` fail with the fault.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use trove_e2e::{
    cli::Cli, commit_mark_and_wait_for_the_store, ids, marked_after_a_backup, wait_until,
};

/// Runs `sql` in a transaction of its own and commits it; returns the transaction's id.
async fn committed_xid(conn: &mut sqlx::PgConnection, sql: &str) -> Result<i64> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query(sql).execute(&mut *tx).await?;
    let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(xid)
}

/// Runs `instance recover <args> --wait -f json`, which must succeed and end its progress lines
/// with the completion; returns the 202 answer it printed.
async fn recover_and_wait(cli: &Cli, args: &[&str]) -> Result<Value> {
    let mut argv = vec!["instance", "recover"];
    argv.extend(args);
    argv.extend(["--wait", "-f", "json"]);
    let run = cli.run(&argv).await?;
    assert!(run.ok, "{argv:?} failed:\n{}{}", run.stdout, run.stderr);
    // One line per change (stderr is no terminal); a recovery faster than a poll may show
    // only its end.
    let progress: Vec<&str> = run.stderr.lines().collect();
    assert!(
        progress.iter().all(|l| l.starts_with("recovery: "))
            && progress
                .last()
                .is_some_and(|l| l.starts_with("recovery: COMPLETED in ")),
        "{}",
        run.stderr
    );
    serde_json::from_str(&run.stdout).with_context(|| format!("{argv:?} printed {}", run.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_recovers_to_a_restore_point_and_shows_history_and_window() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("cli-rp").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    let i = inst.as_str();

    // A restore point, by instance name, waited for; then the rows it must not hold.
    let point = cli
        .json(&[
            "restore-point",
            "create",
            "cli-rp",
            "before-delete",
            "--wait",
        ])
        .await?;
    assert_eq!(
        (&point["name"], &point["status"]),
        (&"before-delete".into(), &"COMPLETED".into()),
        "{point}"
    );
    assert!(point["lsn"].is_string(), "{point}");
    let points = cli.json(&["restore-point", "list", i]).await?;
    assert_eq!(points[0]["Name"], "before-delete", "{points}");
    assert_eq!(points[0]["LSN"], point["lsn"], "{points}");
    let dup = cli
        .fails(&["restore-point", "create", i, "before-delete"])
        .await?;
    assert!(dup.contains("HTTP 409"), "{dup}");
    sqlx::query("DELETE FROM marks WHERE id > 5")
        .execute(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 1000).await?;

    // Refusals, by the server or the parser: a clear message, non-zero, nothing changed.
    let rows = ids(&mut conn, "marks").await?;
    assert_eq!(rows, [1, 2, 3, 4, 5, 1000]);
    for (args, said) in [
        (
            vec!["--lsn", "nonsense"],
            &["['target']['lsn'] must be an LSN", "(HTTP 400)"][..],
        ),
        (
            vec!["--restore-point", "no-such-point"],
            &["no-such-point", "(HTTP 404)"],
        ),
        (
            vec!["--latest", "--preview"],
            &["A preview needs a target replay can pause at", "(HTTP 400)"],
        ),
        (
            vec!["--time", "2026-11-25T17:04:57"],
            &["not an RFC 3339 time with a zone offset", "(HTTP 400)"],
        ),
        (
            vec!["--lsn", "0/1", "--xid", "900"],
            &["argument --xid: not allowed with argument --lsn"],
        ),
        (
            vec!["--lsn", "0/1", "--exclusive"],
            &["--exclusive applies to --xid only"],
        ),
        (vec![], &["one of the arguments --backup --time"]),
    ] {
        let mut argv = vec!["instance", "recover", i];
        argv.extend(args);
        let err = cli.fails(&argv).await?;
        assert!(
            said.iter().all(|s| err.contains(s)),
            "{argv:?} printed {err}"
        );
    }
    assert_eq!(stack.instance(id).await?["status"], "ACTIVE");
    assert_eq!(ids(&mut conn, "marks").await?, rows);
    assert_eq!(
        cli.json(&["recovery", "list", i]).await?,
        serde_json::json!([])
    );
    drop(conn);

    // To the restore point: the deleted rows are back, the later one is gone.
    let answer = recover_and_wait(&cli, &["cli-rp", "--restore-point", "before-delete"]).await?;
    assert_eq!(answer["id"], inst, "{answer}");
    assert_eq!(
        answer["target"]["restore_point"], "before-delete",
        "{answer}"
    );
    let rid = answer["recovery_id"]
        .as_str()
        .context("recovery_id")?
        .to_string();
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());

    // The history, as a listing and one record with its phases.
    let listed = cli.json(&["recovery", "list", i]).await?;
    let row = &listed[0];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        (&row["ID"], &row["State"], &row["Phase"]),
        (&rid.clone().into(), &"COMPLETED".into(), &"done".into()),
        "{listed}"
    );
    let target = row["Target"].as_str().unwrap_or_default();
    assert!(
        target.starts_with(&format!(
            "restore point before-delete at {}",
            point["lsn"].as_str().unwrap_or("?")
        )),
        "{listed}"
    );
    assert!(row["Duration (ms)"].is_u64(), "{listed}");
    let shown = cli.json(&["recovery", "show", i, &rid]).await?;
    assert_eq!(shown["state"], "COMPLETED", "{shown}");
    assert_eq!(shown["target"]["kind"], "restore_point", "{shown}");
    let phases: Vec<&str> = shown["phases"]
        .as_array()
        .context("phases")?
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    assert_eq!(phases[..2], ["queued", "dispatched"], "{shown}");
    assert_eq!(phases.last(), Some(&"health_check"), "{shown}");
    let table = cli.ok(&["recovery", "show", i, &rid]).await?;
    assert!(
        table.contains("queued: ") && table.contains("health_check: "),
        "{table}"
    );

    // The window: on the recovery's new timeline (once a commit on it is in the store), whose
    // lineage leads back to the first.
    let new_timeline = shown["outcome"]["new_timeline"]
        .as_i64()
        .context("new timeline")?;
    sqlx::query("CREATE TABLE later (id int)")
        .execute(&mut conn)
        .await?;
    let window = wait_until(
        "the CLI to show the window on the new timeline",
        Duration::from_secs(60),
        || async {
            let w = cli.json(&["instance", "recovery-window", i]).await?;
            Ok((w["timeline"] == new_timeline && w["latest"].is_string()).then_some(w))
        },
    )
    .await?;
    assert_eq!(
        window["lineage"],
        serde_json::json!([new_timeline, 1]),
        "{window}"
    );
    assert!(window["earliest"].is_string(), "{window}");
    let first = cli
        .json(&["instance", "recovery-window", i, "--timeline", "1"])
        .await?;
    assert_eq!(first["lineage"], serde_json::json!([1]), "{first}");
    assert!(first["latest"].is_string(), "{first}");
    let err = cli
        .fails(&["instance", "recovery-window", i, "--timeline", "99"])
        .await?;
    assert!(err.contains("(HTTP 400)"), "{err}");

    // A recovery that fails (the backup's archive damaged): --wait exits non-zero with the
    // fault, and the instance keeps its rows.
    let backup = &window["backups"][0];
    let (_, shown_backup) = stack
        .get_a(&format!(
            "/backups/{}",
            backup["id"].as_str().context("backup id")?
        ))
        .await?;
    let key = shown_backup["backup"]["locationRef"]
        .as_str()
        .context("location")?;
    let store = stack.store()?;
    let mut bytes = store.get(key).await?.context("archive")?.to_vec();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    store.put(key, bytes.into()).await?;
    let failed = cli
        .fails(&["instance", "recover", i, "--backup", "base", "--wait"])
        .await?;
    assert!(
        failed.contains("failed") && failed.contains("checksum_mismatch"),
        "{failed}"
    );
    stack.wait_active(id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    let listed = cli.json(&["recovery", "list", i]).await?;
    assert_eq!(
        (&listed[0]["State"], &listed[0]["Error Code"]),
        (&"FAILED".into(), &"checksum_mismatch".into()),
        "{listed}"
    );
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_undoes_a_transaction_then_recovers_to_a_time() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("cli-xid").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    let i = inst.as_str();
    let xid = committed_xid(&mut conn, "DELETE FROM marks WHERE id > 5").await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 1000).await?;
    drop(conn);

    // Just before the delete: its rows are back, and the later row is gone too.
    let xid = xid.to_string();
    let answer = recover_and_wait(&cli, &[i, "--xid", &xid, "--exclusive"]).await?;
    assert_eq!(
        answer["target"],
        serde_json::json!({"xid": xid.parse::<u32>()?, "inclusive": false}),
        "{answer}"
    );
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());

    // On the new timeline: row 2000, a time T, row 3000; back to T (given with an offset).
    sqlx::query("INSERT INTO marks VALUES (2000)")
        .execute(&mut conn)
        .await?;
    let t: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 3000).await?;
    drop(conn);
    let plus_one = chrono::FixedOffset::east_opt(3600).context("offset")?;
    let at = t
        .with_timezone(&plus_one)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let answer = recover_and_wait(&cli, &[i, "--time", &at]).await?;
    assert_eq!(answer["point_in_time"], trove_e2e::rfc3339(t), "{answer}");
    let mut conn = stack.connect_instance(id).await?;
    let mut want: Vec<i32> = (1..=10).collect();
    want.push(2000);
    assert_eq!(ids(&mut conn, "marks").await?, want);

    let listed = cli.json(&["recovery", "list", i]).await?;
    let targets: Vec<&str> = listed
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|r| r["Target"].as_str())
        .collect();
    assert_eq!(targets.len(), 2, "{listed}");
    assert!(targets[0].starts_with("time "), "{listed}");
    assert!(
        targets[1].starts_with(&format!("xid {xid} exclusive")),
        "{listed}"
    );
    stack.finish().await
}

/// A rewind window set and waited for with the CLI; an undo just before a transaction then comes
/// from the delayed copy (the recovery's outcome says so), with exactly the rows from before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_sets_a_rewind_window_and_undoes_a_transaction_from_the_copy() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("cli-rewind").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    let i = inst.as_str();

    let refused = cli
        .fails(&["instance", "rewind", "set", i, "--window", "0"])
        .await?;
    assert!(refused.contains("(HTTP 400)"), "{refused}");
    // A transaction from before the copy: the copy holds it already.
    let old_xid = committed_xid(&mut conn, "UPDATE marks SET id = 11 WHERE id = 10").await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 500).await?;
    let set = cli
        .json(&[
            "instance",
            "rewind",
            "set",
            "cli-rewind",
            "--window",
            "10",
            "--wait",
        ])
        .await?;
    assert_eq!(set["status"], "READY", "{set}");
    assert_eq!(set["window_minutes"], 10, "{set}");
    let shown = cli.json(&["instance", "rewind", "show", i]).await?;
    assert!(shown["rewindable_from"].is_string(), "{shown}");

    // Undoing that one restores the backup, and says why.
    drop(conn);
    let old_xid = old_xid.to_string();
    let answer = recover_and_wait(&cli, &[i, "--xid", &old_xid, "--exclusive"]).await?;
    let rid = answer["recovery_id"].as_str().context("recovery id")?;
    let (_, shown) = stack
        .get_a(&format!("/instances/{id}/recoveries/{rid}"))
        .await?;
    let outcome = &shown["recovery"]["outcome"];
    assert_eq!(outcome["source"], "backup", "{shown}");
    assert!(
        outcome["rewind_skipped"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("applied transaction {old_xid}"))),
        "{shown}"
    );
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    // The copy is built again for the new timeline.
    wait_until("the copy rebuilt", Duration::from_secs(180), || async {
        let v = cli.json(&["instance", "rewind", "show", i]).await?;
        Ok(
            (v["status"] == "READY" && v["timeline"] != shown["recovery"]["target"]["timeline"])
                .then_some(()),
        )
    })
    .await?;

    // The accident, after the copy was built: inside the window.
    let xid = committed_xid(&mut conn, "DELETE FROM marks WHERE id > 5").await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 1000).await?;
    drop(conn);

    let xid = xid.to_string();
    let answer = recover_and_wait(&cli, &[i, "--xid", &xid, "--exclusive"]).await?;
    let rid = answer["recovery_id"].as_str().context("recovery id")?;
    let (_, shown) = stack
        .get_a(&format!("/instances/{id}/recoveries/{rid}"))
        .await?;
    assert_eq!(shown["recovery"]["outcome"]["source"], "rewind", "{shown}");
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    drop(conn);

    let unset = cli.json(&["instance", "rewind", "unset", i]).await?;
    assert_eq!(unset["status"], "OFF", "{unset}");
    stack.finish().await
}

/// The plugin's own unit tests (parsing, requests, output, how `--wait` ends; no server), run
/// from the source with the CLI's Python.
#[tokio::test]
async fn cli_recovery_plugin_unit_tests_pass() -> Result<()> {
    let python = trove_e2e::cli::openstack().with_file_name("python");
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/osc-plugin");
    let out = tokio::process::Command::new(&python)
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(&plugin)
        .env("PYTHONPATH", &plugin)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .with_context(|| format!("running {}", python.display()))?;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
