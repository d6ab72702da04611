//! `create_instance` on the real PostgreSQL and RabbitMQ: the users' passwords arrive sealed for
//! the taskmanager and leave in `prepare` sealed for the chosen host, or the build fails without
//! sending anything.

mod support;

use anyhow::{Result, bail};
use support::Harness;
use trove_common::{
    amqp::{Delivered, Outcome},
    rpc::{
        RequestContext, RpcMessage,
        guest::GuestMethod,
        taskmanager::{DatabaseSpec, FlavorRef, TaskManagerMethod, UserSpec},
        topics,
    },
    secrets::{Password, PublicKey, SecretKey, user_password_context},
    status::{InstanceTask, ServiceStatus},
    testkit::insert_instance,
};
use uuid::Uuid;

const PASSWORD: &str = "tm-test-secret-1";

/// A guest host with `key` (or none), live and with room.
async fn host(h: &Harness, id: &str, key: Option<&PublicKey>) -> Result<()> {
    sqlx::query(
        "INSERT INTO guest_hosts (id, address, capacity, last_heartbeat, public_key) \
         VALUES ($1, '127.0.0.1', 10, now(), $2)",
    )
    .bind(id)
    .bind(key.map(PublicKey::to_base64))
    .execute(&h.pool)
    .await?;
    Ok(())
}

/// An instance as the API inserts it for a create: BUILDING, not placed yet.
async fn unplaced_instance(h: &Harness) -> Result<Uuid> {
    insert_instance(&h.pool, None, InstanceTask::Building, ServiceStatus::New).await
}

/// The API's `create_instance` with user `app`, its password sealed for `for_key`, as delivered
/// from the control plane's broker user.
fn create_message(instance_id: Uuid, for_key: &PublicKey) -> Delivered {
    let sealed = for_key.seal(
        &user_password_context(instance_id, "app"),
        &Password::new(PASSWORD),
    );
    let appdb = DatabaseSpec {
        name: "appdb".into(),
    };
    let message = RpcMessage::new(
        &TaskManagerMethod::CreateInstance {
            instance_id,
            name: "db1".into(),
            flavor: FlavorRef {
                id: "1".into(),
                ram: 512,
            },
            datastore_manager: "postgresql".into(),
            ds_version: "15".into(),
            volume_size: Some(1),
            backup_id: None,
            databases: vec![appdb.clone()],
            users: vec![UserSpec {
                name: "app".into(),
                password: sealed,
                databases: vec![appdb],
            }],
            restore_target: None,
        },
        RequestContext::default(),
    );
    Delivered {
        message,
        sender: Some("guest".into()),
    }
}

#[tokio::test]
async fn each_password_is_sealed_again_for_the_host_the_instance_is_placed_on() -> Result<()> {
    let h = Harness::start().await?;
    let host_key = SecretKey::generate();
    host(&h, &h.host, Some(&host_key.public_key())).await?;
    let id = unplaced_instance(&h).await?;

    let outcome =
        h.tm.handle_task(create_message(id, &h.tm.secret_key.public_key()))
            .await;
    assert!(matches!(outcome, Outcome::Ack), "{outcome:?}");

    let sent = h.sent().await?;
    let [(topic, GuestMethod::Prepare { users, .. })] = sent.as_slice() else {
        bail!("expected one prepare, got {sent:?}");
    };
    assert_eq!(topic, &topics::guest_host(&h.host));
    let [user] = users.as_slice() else {
        bail!("expected one user, got {users:?}");
    };
    let context = user_password_context(id, "app");
    let opened = host_key.open(&context, &user.password)?;
    assert_eq!(opened.expose(), PASSWORD);
    // Sealed for the host, not for the taskmanager, and bound to this instance.
    assert!(h.tm.secret_key.open(&context, &user.password).is_err());
    let elsewhere = user_password_context(Uuid::new_v4(), "app");
    assert!(host_key.open(&elsewhere, &user.password).is_err());
    Ok(())
}

#[tokio::test]
async fn a_create_whose_passwords_do_not_open_fails_and_sends_nothing() -> Result<()> {
    let h = Harness::start().await?;
    host(&h, &h.host, Some(&SecretKey::generate().public_key())).await?;
    let id = unplaced_instance(&h).await?;

    // Sealed for a key that is not the taskmanager's: as with a stale `taskmanager_public_key`.
    let stranger = SecretKey::generate().public_key();
    let outcome = h.tm.handle_task(create_message(id, &stranger)).await;
    assert!(matches!(outcome, Outcome::Ack), "{outcome:?}");

    assert!(h.sent().await?.is_empty(), "nothing may go to a host");
    let row = h.instance_row(id).await?;
    assert_eq!(row.task_id, InstanceTask::BuildingErrorServer.code());
    assert_eq!(row.status_description, ServiceStatus::Failed.description());
    let faults = h.faults(id).await?;
    assert!(
        faults.first().is_some_and(
            |(code, m, _)| code.as_deref() == Some("passwords_unreadable")
                && m.contains("could not be read by the control plane")
        ),
        "{faults:?}"
    );
    let placed: Option<String> = sqlx::query_scalar("SELECT host FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&h.pool)
        .await?;
    assert_eq!(placed, None);

    // A redelivery changes nothing: the build already failed.
    let again = h.tm.handle_task(create_message(id, &stranger)).await;
    assert!(matches!(again, Outcome::Ack), "{again:?}");
    assert_eq!(h.faults(id).await?.len(), 1);
    Ok(())
}
