//! Configuration groups through the taskmanager, on the real PostgreSQL and RabbitMQ: the group's
//! values as the control database holds them go to the guest; only the report for the current
//! revision settles anything; RESTART_REQUIRED survives periodic heartbeats and ends with a
//! restart; a failure is a fault the user reads.

mod support;

use anyhow::Result;
use serde_json::json;
use support::Harness;
use trove_common::{
    amqp::{Delivered, Outcome},
    rpc::{
        RequestContext, RpcMessage,
        conductor::{ConductorMethod, HeartbeatPayload},
        guest::GuestMethod,
        taskmanager::TaskManagerMethod,
        topics,
    },
    status::{InstanceTask, ServiceStatus},
};
use uuid::Uuid;

fn broker_user(host: &str) -> String {
    format!("broker-{host}")
}

async fn register(h: &Harness) -> Result<()> {
    sqlx::query("UPDATE guest_hosts SET broker_user = $2 WHERE id = $1")
        .bind(&h.host)
        .bind(broker_user(&h.host))
        .execute(&h.pool)
        .await?;
    Ok(())
}

async fn from_guest(h: &Harness, method: ConductorMethod) -> Outcome {
    h.tm.handle_conductor(Delivered {
        message: RpcMessage::new(&method, RequestContext::default()),
        sender: Some(broker_user(&h.host)),
    })
    .await
}

fn applied(
    id: Uuid,
    sent: f64,
    revision: i64,
    restart: bool,
    error: Option<&str>,
) -> ConductorMethod {
    ConductorMethod::OverridesApplied {
        instance_id: id,
        sent,
        revision,
        restart_required: restart,
        error: error.map(str::to_string),
    }
}

fn heartbeat(id: Uuid, sent: f64, completes: Option<&str>) -> ConductorMethod {
    ConductorMethod::Heartbeat {
        instance_id: id,
        payload: HeartbeatPayload {
            service_status: ServiceStatus::Healthy.description().into(),
            address: None,
            port: None,
            error: None,
            completes: completes.map(str::to_string),
            volume_used_bytes: Some(3 << 20),
            rewind: None,
            accounts: None,
        },
        sent,
    }
}

async fn service(h: &Harness, id: Uuid) -> Result<Option<ServiceStatus>> {
    let code: i32 =
        sqlx::query_scalar("SELECT status_id FROM service_statuses WHERE instance_id = $1")
            .bind(id)
            .fetch_one(&h.pool)
            .await?;
    Ok(ServiceStatus::from_code(code))
}

/// An idle instance with a group of `values` attached at `revision`.
async fn configured(h: &Harness, revision: i64) -> Result<Uuid> {
    let id = h.instance(InstanceTask::None).await?;
    let group = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO configurations (id, name, tenant_id, datastore_version_id) \
         SELECT $1, 'g', 'tenant-a', datastore_version_id FROM instances WHERE id = $2",
    )
    .bind(group)
    .bind(id)
    .execute(&h.pool)
    .await?;
    for (k, v) in [("work_mem", json!("8MB")), ("max_connections", json!(150))] {
        sqlx::query(
            "INSERT INTO configuration_parameters (configuration_id, key, value) VALUES ($1, $2, $3)",
        )
        .bind(group)
        .bind(k)
        .bind(sqlx::types::Json(v))
        .execute(&h.pool)
        .await?;
    }
    sqlx::query(
        "UPDATE instances SET configuration_id = $2, configuration_revision = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(group)
    .bind(revision)
    .execute(&h.pool)
    .await?;
    register(h).await?;
    Ok(id)
}

#[tokio::test]
async fn the_current_values_go_to_the_guest_and_restart_required_lasts_until_a_restart()
-> Result<()> {
    let h = Harness::start().await?;
    let id = configured(&h, 2).await?;

    // An older message still sends what the control database holds now, under its revision.
    let msg = TaskManagerMethod::UpdateConfiguration {
        instance_id: id,
        revision: 1,
    };
    let outcome =
        h.tm.handle_task(Delivered {
            message: RpcMessage::new(&msg, RequestContext::default()),
            sender: Some("guest".into()),
        })
        .await;
    assert_eq!(outcome, Outcome::Ack);
    let sent = h.sent().await?;
    let [
        (
            topic,
            GuestMethod::UpdateOverrides {
                overrides,
                revision,
            },
        ),
    ] = sent.as_slice()
    else {
        panic!("not one update_overrides: {sent:?}");
    };
    assert_eq!(*topic, topics::guest(id));
    assert_eq!(*revision, 2);
    assert_eq!(overrides["work_mem"], "8MB");
    assert_eq!(overrides["max_connections"], 150);

    // A report for an older revision settles nothing.
    from_guest(&h, applied(id, 1.0, 1, true, None)).await;
    assert_eq!(service(&h, id).await?, Some(ServiceStatus::Running));

    from_guest(&h, applied(id, 2.0, 2, true, None)).await;
    assert_eq!(service(&h, id).await?, Some(ServiceStatus::RestartRequired));
    // Periodic heartbeats keep it (and report the space used); the restart's ends it.
    from_guest(&h, heartbeat(id, 3.0, None)).await;
    assert_eq!(service(&h, id).await?, Some(ServiceStatus::RestartRequired));
    let used: Option<i64> =
        sqlx::query_scalar("SELECT volume_used_bytes FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&h.pool)
            .await?;
    assert_eq!(used, Some(3 << 20));
    from_guest(&h, heartbeat(id, 4.0, Some("restart"))).await;
    assert_eq!(service(&h, id).await?, Some(ServiceStatus::Healthy));

    // A failure is a fault with the guest's words as details; a later success clears it.
    let why = "the server refused the value of work_mem: setting could not be applied";
    from_guest(&h, applied(id, 5.0, 2, false, Some(why))).await;
    let faults = h.faults(id).await?;
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].0.as_deref(), Some("configuration_failed"));
    assert_eq!(faults[0].2, why);
    from_guest(&h, applied(id, 6.0, 2, false, None)).await;
    assert!(h.faults(id).await?.is_empty());
    assert_eq!(service(&h, id).await?, Some(ServiceStatus::Healthy));
    Ok(())
}
