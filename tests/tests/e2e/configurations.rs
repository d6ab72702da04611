//! Configuration groups as `openstack database configuration …` drives them: the parameters of
//! PostgreSQL 15, groups created, attached at create and later, changed (merged and replaced),
//! detached and deleted, with the effect checked inside the managed server: reloaded values at
//! once, restart-only values after RESTART_REQUIRED and `instance restart`.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{
    ALL, API_ONLY, Stack, envelope::assert_fault, fixtures::idle_instance, wait_until,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(120);

async fn create_group(stack: &Stack, name: &str, values: Value) -> Result<(StatusCode, Value)> {
    stack
        .post_a(
            "/configurations",
            json!({"configuration": {
                "name": name,
                "values": values,
                "datastore": {"type": "postgresql", "version": "15"},
            }}),
        )
        .await
}

async fn group_count(stack: &Stack) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM configurations WHERE NOT deleted")
            .fetch_one(&stack.pool)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_applied_reloaded_restarted_and_detached_inside_the_server() -> Result<()> {
    let stack = Stack::start(ALL).await?;

    // What `configuration parameter list/show 15 --datastore postgresql` read.
    let (status, params) = stack
        .get_a("/datastores/postgresql/versions/15/parameters")
        .await?;
    assert_eq!(status, StatusCode::OK, "{params}");
    let list = params["configuration-parameters"]
        .as_array()
        .context("no parameters")?;
    let max_conn = list
        .iter()
        .find(|p| p["name"] == "max_connections")
        .context("no max_connections")?;
    assert_eq!(max_conn["restart_required"], true);
    assert_eq!(max_conn["type"], "integer");
    assert!(
        max_conn["min"].is_i64() && max_conn["max"].is_i64(),
        "{max_conn}"
    );
    let version_id = max_conn["datastore_version_id"]
        .as_str()
        .context("no version id")?;
    let (status, one) = stack
        .get_a(&format!(
            "/datastores/versions/{version_id}/parameters/work_mem"
        ))
        .await?;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["restart_required"], false);

    // `configuration create`, then `instance create --configuration`.
    let (status, created) = create_group(
        &stack,
        "tuned",
        json!({"work_mem": "8MB", "log_line_prefix": "%m it's \\ [%p] "}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{created}");
    let group = created["configuration"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    assert_eq!(created["configuration"]["instance_count"], 0);
    assert_eq!(created["configuration"]["values"]["work_mem"], "8MB");

    let (status, v) = stack
        .post_a(
            "/instances",
            json!({"instance": {
                "name": "configured",
                "flavorRef": "1",
                "volume": {"size": 1},
                "datastore": {"type": "postgresql", "version": "15"},
                "configuration": group,
            }}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = Uuid::parse_str(v["instance"]["id"].as_str().context("no id")?)?;
    let shown = stack.wait_active(id).await?;
    assert_eq!(shown["configuration"]["id"], group.as_str(), "{shown}");
    assert_eq!(stack.setting(id, "work_mem").await?, "8MB");
    // Quotes and backslashes arrive as values, not as configuration syntax.
    assert_eq!(
        stack.setting(id, "log_line_prefix").await?,
        "%m it's \\ [%p] "
    );
    // The flavor's memory settings (m1.tiny, 512 MB) are there too.
    assert_eq!(stack.setting(id, "shared_buffers").await?, "128MB");

    let (_, attached) = stack
        .get_a(&format!("/configurations/{group}/instances"))
        .await?;
    assert_eq!(attached["instances"][0]["id"], id.to_string(), "{attached}");
    let (status, refused) = stack
        .call_a(Method::DELETE, &format!("/configurations/{group}"), None)
        .await?;
    assert_fault(
        status,
        &refused,
        StatusCode::BAD_REQUEST,
        "delete of an attached group",
    );

    // `configuration parameter set` (PATCH): merged in; max_connections waits for a restart, as
    // Trove shows.
    let (status, body) = stack
        .call_a(
            Method::PATCH,
            &format!("/configurations/{group}"),
            Some(json!({"configuration": {"values": {"max_connections": 150}}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack
        .wait_status(id, "RESTART_REQUIRED", "RESTART_REQUIRED", WAIT)
        .await?;
    assert_eq!(stack.setting(id, "max_connections").await?, "100");
    assert_eq!(
        stack.setting(id, "work_mem").await?,
        "8MB",
        "merged, not replaced"
    );
    let (status, body) = stack
        .post_a(&format!("/instances/{id}/action"), json!({"restart": {}}))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack.wait_active(id).await?;
    assert_eq!(stack.setting(id, "max_connections").await?, "150");

    // `configuration set` (PUT): exactly the new values, reloaded without a restart.
    let (status, body) = stack
        .call_a(
            Method::PUT,
            &format!("/configurations/{group}"),
            Some(
                json!({"configuration": {"values": {"work_mem": "16MB", "max_connections": 150}}}),
            ),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack.wait_setting(id, "work_mem", "16MB").await?;
    let (_, detail) = stack.get_a(&format!("/configurations/{group}")).await?;
    assert_eq!(
        detail["configuration"]["values"],
        json!({"work_mem": "16MB", "max_connections": 150})
    );
    assert_eq!(detail["configuration"]["instance_count"], 1);
    assert_eq!(stack.instance(id).await?["status"], "ACTIVE");

    // `configuration default`: the flavor's settings with the group's values over them.
    let (_, effective) = stack
        .get_a(&format!("/instances/{id}/configuration"))
        .await?;
    let effective = &effective["instance"]["configuration"];
    assert_eq!(effective["work_mem"], "16MB", "{effective}");
    assert_eq!(effective["shared_buffers"], "128MB", "{effective}");
    assert_eq!(effective["max_connections"], 150, "{effective}");

    // A value the rules let through but the server refuses at reload: the previous values stay
    // in force and the instance shows why.
    let timezone = stack.setting(id, "timezone").await?;
    let (status, body) = stack
        .call_a(
            Method::PATCH,
            &format!("/configurations/{group}"),
            Some(json!({"configuration": {"values": {"timezone": "Mars/Olympus_Mons"}}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let faulted = wait_until("the refused value's fault", WAIT, || async {
        let v = stack.instance(id).await?;
        Ok((v["fault"]["error_code"] == "configuration_failed").then_some(v))
    })
    .await?;
    assert_eq!(faulted["status"], "ACTIVE", "{faulted}");
    assert_eq!(stack.setting(id, "timezone").await?, timezone);
    assert_eq!(stack.setting(id, "work_mem").await?, "16MB");

    // `configuration detach`: the defaults come back; max_connections at the next restart.
    let (status, body) = stack
        .call_a(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(json!({"instance": {"configuration": null}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack
        .wait_status(id, "RESTART_REQUIRED", "RESTART_REQUIRED", WAIT)
        .await?;
    assert_ne!(stack.setting(id, "work_mem").await?, "16MB");
    let detached = stack.instance(id).await?;
    assert!(detached.get("configuration").is_none(), "{detached}");
    assert!(
        detached.get("fault").is_none(),
        "the detach applied: {detached}"
    );

    // Unused now, the group can go.
    let (status, _) = stack
        .call_a(Method::DELETE, &format!("/configurations/{group}"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = stack.get_a(&format!("/configurations/{group}")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // `configuration attach` of a new group to the running instance.
    let (_, second) = create_group(&stack, "second", json!({"statement_timeout": 4000})).await?;
    let second = second["configuration"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let (status, body) = stack
        .call_a(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(json!({"instance": {"configuration": second}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack.wait_setting(id, "statement_timeout", "4s").await?;
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_refused_naming_the_parameter_and_change_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let cases = [
        (json!({"max_connections": "lots"}), "'max_connections'"),
        (json!({"max_connections": 0}), "'max_connections'"),
        (json!({"autovacuum": 1}), "'autovacuum'"),
        (
            json!({"work_mem": "8MB\ninclude '/etc/passwd'"}),
            "'work_mem'",
        ),
        (json!({"archive_command": "/bin/true"}), "'archive_command'"),
        (json!({"bytea_output": "octal"}), "'bytea_output'"),
        (json!({"work_mem": "32kB"}), "'work_mem'"),
        (json!({"work_mem": "5min"}), "'work_mem'"),
        (json!({"no_such_parameter": 1}), "'no_such_parameter'"),
    ];
    for (values, named) in cases {
        let (status, body) = create_group(&stack, "bad", values.clone()).await?;
        assert_fault(status, &body, StatusCode::BAD_REQUEST, &values);
        let message = body["badRequest"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{values}: {message}");
    }
    assert_eq!(group_count(&stack).await?, 0);

    // A change that fails keeps the group as it was.
    let (_, created) = create_group(&stack, "ok", json!({"work_mem": "4MB"})).await?;
    let group = created["configuration"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let (status, body) = stack
        .call_a(
            Method::PATCH,
            &format!("/configurations/{group}"),
            Some(json!({"configuration": {"values": {"work_mem": "4MB", "fsync": false}}})),
        )
        .await?;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "fsync");
    let (_, detail) = stack.get_a(&format!("/configurations/{group}")).await?;
    assert_eq!(
        detail["configuration"]["values"],
        json!({"work_mem": "4MB"})
    );

    // Unknown groups, parameters and versions are 404s.
    let missing = Uuid::new_v4();
    let (status, body) = stack.get_a(&format!("/configurations/{missing}")).await?;
    assert_fault(status, &body, StatusCode::NOT_FOUND, "unknown group");
    let (status, body) = stack
        .get_a("/datastores/postgresql/versions/15/parameters/no_such_parameter")
        .await?;
    assert_fault(status, &body, StatusCode::NOT_FOUND, "unknown parameter");
    let (status, body) = stack
        .get_a(&format!("/datastores/versions/{missing}/parameters"))
        .await?;
    assert_fault(status, &body, StatusCode::NOT_FOUND, "unknown version");

    // A create naming no group, or an unknown one, creates nothing.
    for (configuration, want) in [
        (json!("cfg-1"), StatusCode::BAD_REQUEST),
        (json!(missing), StatusCode::NOT_FOUND),
    ] {
        let (status, body) = stack
            .post_a(
                "/instances",
                json!({"instance": {"name": "x", "flavorRef": "1", "configuration": configuration}}),
            )
            .await?;
        assert_fault(status, &body, want, &configuration);
    }
    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(instances, 0);

    // Attaching an unknown group, or a second one, is refused and attaches nothing.
    let instance = idle_instance(&stack, trove_e2e::TENANT_A, Some(1)).await?;
    let (status, body) = stack
        .call_a(
            Method::PUT,
            &format!("/instances/{instance}"),
            Some(json!({"instance": {"configuration": missing}})),
        )
        .await?;
    assert_fault(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "attach of an unknown group",
    );
    sqlx::query("UPDATE instances SET configuration_id = $2 WHERE id = $1")
        .bind(instance)
        .bind(Uuid::parse_str(&group)?)
        .execute(&stack.pool)
        .await?;
    let (status, body) = stack.attach_configuration(instance, &group).await?;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "a second attach");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(outbox, 0, "nothing was sent");
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_the_server_cannot_start_with_is_set_aside_at_restart() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _, conn) = stack
        .seeded_instance("kept", "CREATE TABLE t (id int); INSERT INTO t VALUES (7);")
        .await?;
    drop(conn);
    // Valid on its own and accepted at reload, but PostgreSQL refuses to start with more
    // reserved connections than connections (m1.tiny has 100).
    let (_, group) = create_group(
        &stack,
        "unstartable",
        json!({"superuser_reserved_connections": 150}),
    )
    .await?;
    let group = group["configuration"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let (status, body) = stack.attach_configuration(id, &group).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack
        .wait_status(id, "RESTART_REQUIRED", "RESTART_REQUIRED", WAIT)
        .await?;

    let (status, body) = stack
        .post_a(&format!("/instances/{id}/action"), json!({"restart": {}}))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let shown = wait_until("the fault of the set-aside group", WAIT, || async {
        let v = stack.instance(id).await?;
        Ok(
            (v["status"] == "ACTIVE" && v["fault"]["error_code"] == "configuration_failed")
                .then_some(v),
        )
    })
    .await?;
    assert_eq!(shown["operating_status"], "HEALTHY");
    assert_eq!(
        stack.setting(id, "superuser_reserved_connections").await?,
        "3"
    );
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(trove_e2e::ids(&mut conn, "t").await?, vec![7]);
    assert!(
        stack
            .instance_dir(id)
            .join("overrides.conf.rejected")
            .exists(),
        "kept for the operator"
    );
    stack.finish().await
}
