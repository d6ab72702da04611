//! Network access changes through the taskmanager, on the real PostgreSQL and RabbitMQ: the
//! stored access goes to the instance's guest, and only the guest's report for that access, from
//! that guest's host, ends the UPDATING task; a silent guest turns into an error the user reads.

mod support;

use anyhow::Result;
use serde_json::json;
use support::Harness;
use trove_common::{
    access::Access,
    amqp::{Delivered, Outcome},
    rpc::{
        RequestContext, RpcMessage, conductor::ConductorMethod, guest::GuestMethod,
        taskmanager::TaskManagerMethod, topics,
    },
    status::InstanceTask,
};
use uuid::Uuid;

fn access(cidrs: &[&str]) -> Access {
    Access {
        is_public: false,
        allowed_cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
    }
}

/// An instance in UPDATING whose row holds `stored`, as the API leaves it.
async fn updating(h: &Harness, stored: &Access) -> Result<Uuid> {
    let id = h.instance(InstanceTask::Updating).await?;
    sqlx::query(
        "UPDATE instances SET access = $2, task_deadline = now() + interval '1 hour' WHERE id = $1",
    )
    .bind(id)
    .bind(sqlx::types::Json(serde_json::to_value(stored)?))
    .execute(&h.pool)
    .await?;
    Ok(id)
}

/// The broker user a registered guest host `host` publishes as.
fn broker_user(host: &str) -> String {
    format!("broker-{host}")
}

/// Registers `host` and the test's own host, each with a broker user of its own, as
/// `trove-manage host-add` does.
async fn register(h: &Harness, host: &str) -> Result<()> {
    for id in [host, h.host.as_str()] {
        sqlx::query(
            "INSERT INTO guest_hosts (id, address, capacity, broker_user, last_heartbeat) \
             VALUES ($1, '127.0.0.1', 10, $2, now()) \
             ON CONFLICT (id) DO UPDATE SET broker_user = $2",
        )
        .bind(id)
        .bind(broker_user(id))
        .execute(&h.pool)
        .await?;
    }
    Ok(())
}

/// Delivers the guest's `update_access` report as the broker delivers one `host` published.
async fn report(
    h: &Harness,
    host: &str,
    id: Uuid,
    access: &Access,
    error: Option<&str>,
) -> Outcome {
    let method = ConductorMethod::UpdateAccess {
        instance_id: id,
        sent: 1.0,
        access: access.clone(),
        error: error.map(str::to_string),
    };
    h.tm.handle_conductor(Delivered {
        message: RpcMessage::new(&method, RequestContext::default()),
        sender: Some(broker_user(host)),
    })
    .await
}

/// A task message as the broker delivers one from the control plane.
fn task_message(method: &TaskManagerMethod) -> Delivered {
    Delivered {
        message: RpcMessage::new(method, RequestContext::default()),
        sender: Some("guest".into()),
    }
}

async fn task(h: &Harness, id: Uuid) -> Result<Option<InstanceTask>> {
    Ok(h.instance_row(id).await?.task())
}

#[tokio::test]
async fn the_stored_access_goes_to_the_guest_and_only_its_own_report_ends_the_task() -> Result<()> {
    let h = Harness::start().await?;
    let wanted = access(&["10.0.0.0/8"]);
    let id = updating(&h, &wanted).await?;
    register(&h, "another-host").await?;
    // The message names an access; the one stored in the control database is what is applied.
    let msg = TaskManagerMethod::UpdateAccess {
        instance_id: id,
        access: access(&["192.0.2.0/24"]),
    };
    let outcome = h.tm.handle_task(task_message(&msg)).await;
    assert_eq!(outcome, Outcome::Ack);
    let sent = h.sent().await?;
    assert_eq!(
        sent,
        vec![(
            topics::guest(id),
            GuestMethod::UpdateAccess {
                access: wanted.clone()
            }
        )]
    );

    // Not from the instance's host: refused. For an access that is no longer current: ignored.
    let other = report(&h, "another-host", id, &wanted, None).await;
    assert_eq!(other, Outcome::DeadLetter);
    report(&h, &h.host, id, &access(&["192.0.2.0/24"]), None).await;
    assert_eq!(task(&h, id).await?, Some(InstanceTask::Updating));

    // A failure is an error with a fault; the guest's words are the details only.
    let why = "the new client authentication rules do not parse (line 6: /srv/x)";
    report(&h, &h.host, id, &wanted, Some(why)).await;
    assert_eq!(task(&h, id).await?, Some(InstanceTask::UpdatingErrorAccess));
    let faults = h.faults(id).await?;
    assert_eq!(faults.len(), 1);
    let (code, message, details) = &faults[0];
    assert_eq!(code.as_deref(), Some("access_update_failed"));
    assert!(!message.contains('/'), "{message}");
    assert_eq!(details, why);

    // Sent again and applied: the task ends and the access fault goes.
    sqlx::query("UPDATE instances SET task_id = $2 WHERE id = $1")
        .bind(id)
        .bind(InstanceTask::Updating.code())
        .execute(&h.pool)
        .await?;
    report(&h, &h.host, id, &wanted, None).await;
    assert_eq!(task(&h, id).await?, Some(InstanceTask::None));
    assert!(h.faults(id).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_silent_guest_turns_the_update_into_an_error_that_its_late_report_settles() -> Result<()>
{
    let h = Harness::start().await?;
    let wanted = access(&["127.0.0.2/32"]);
    let id = updating(&h, &wanted).await?;
    register(&h, "another-host").await?;
    sqlx::query("UPDATE instances SET task_deadline = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&h.pool)
        .await?;
    h.tm.sweep_once().await?;
    assert_eq!(task(&h, id).await?, Some(InstanceTask::UpdatingErrorAccess));
    let codes: Vec<Option<String>> = h.faults(id).await?.into_iter().map(|f| f.0).collect();
    assert_eq!(codes, vec![Some("access_update_timeout".to_string())]);

    report(&h, &h.host, id, &wanted, None).await;
    assert_eq!(task(&h, id).await?, Some(InstanceTask::None));
    assert!(h.faults(id).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_update_for_an_instance_without_valid_access_is_an_error_not_a_cast() -> Result<()> {
    let h = Harness::start().await?;
    let id = h.instance(InstanceTask::Updating).await?;
    sqlx::query("UPDATE instances SET access = $2 WHERE id = $1")
        .bind(id)
        .bind(sqlx::types::Json(json!({"allowed_cidrs": ["not a cidr"]})))
        .execute(&h.pool)
        .await?;
    let msg = TaskManagerMethod::UpdateAccess {
        instance_id: id,
        access: access(&[]),
    };
    h.tm.handle_task(task_message(&msg)).await;
    assert!(h.sent().await?.is_empty());
    assert_eq!(task(&h, id).await?, Some(InstanceTask::UpdatingErrorAccess));
    Ok(())
}
