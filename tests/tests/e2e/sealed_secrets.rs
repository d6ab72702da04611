//! Passwords travel sealed for their receiver: neither the `outbox` table nor the broker ever
//! holds one in clear, and the managed server still gets exactly the password the tenant chose.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use trove_e2e::{
    ALL, Daemons, Stack,
    capture::{log_outbox, outbox_log, peek_queue},
    wait_until,
};
use uuid::Uuid;

/// A create body for tenant A with database `appdb` and user `app` with `password`.
fn create_body(name: &str, password: Option<&str>) -> Value {
    let mut body = json!({"instance": {
        "name": name,
        "flavorRef": "1",
        "volume": {"size": 1},
        "datastore": {"type": "postgresql", "version": "15"},
        "databases": [{"name": "appdb"}],
    }});
    if let Some(p) = password {
        body["instance"]["users"] =
            json!([{"name": "app", "password": p, "databases": [{"name": "appdb"}]}]);
    }
    body
}

async fn create(stack: &Stack, name: &str, password: Option<&str>) -> Result<Uuid> {
    let (status, v) = stack
        .post_a("/instances", create_body(name, password))
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    Uuid::parse_str(v["instance"]["id"].as_str().context("no id")?).context("id")
}

/// Every way `secret` could show in `bytes`: as is, in hex, or base64 at any alignment, also
/// inside base64 strings and JSON nested in strings (the oslo envelope).
fn assert_absent(bytes: &[u8], secret: &str, what: &str) {
    let text = String::from_utf8_lossy(bytes);
    let s = secret.as_bytes();
    assert!(!contains(bytes, s), "{what} holds the password in clear");
    assert!(
        !text.to_lowercase().contains(&hex::encode(s)),
        "{what} holds the password in hex"
    );
    // Base64 of the secret after k bytes of anything: the characters that depend only on it.
    for k in 0..3 {
        let mut shifted = vec![0u8; k];
        shifted.extend_from_slice(s);
        for engine in [STANDARD, URL_SAFE] {
            let enc = engine.encode(&shifted);
            let (from, to) = ((8 * k).div_ceil(6), 8 * (k + s.len()) / 6);
            assert!(
                !text.contains(&enc[from..to]),
                "{what} holds the password in base64"
            );
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        walk_strings(&v, &mut |st| {
            if let Ok(inner) = serde_json::from_str::<Value>(st)
                && inner.is_object()
            {
                assert_absent(st.as_bytes(), secret, what);
            }
            for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                if let Ok(decoded) = engine.decode(st) {
                    assert!(
                        !contains(&decoded, s),
                        "{what} holds the password in a base64 string"
                    );
                }
            }
        });
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn walk_strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| walk_strings(x, f)),
        Value::Object(o) => o.values().for_each(|x| walk_strings(x, f)),
        _ => {}
    }
}

/// The inner oslo message of an envelope body.
fn inner(body: &[u8]) -> Result<Value> {
    let outer: Value = serde_json::from_slice(body)?;
    let text = outer["oslo.message"].as_str().context("no oslo.message")?;
    Ok(serde_json::from_str(text)?)
}

/// Each user's password in `body` is a `{"sealed": …}` object, and there is one user.
fn assert_one_sealed_user(body: &[u8], what: &str) -> Result<()> {
    let msg = inner(body)?;
    let users = msg["args"]["users"].as_array().context("no users")?;
    assert_eq!(users.len(), 1, "{what}: {msg}");
    assert!(
        users[0]["password"]["sealed"]
            .as_str()
            .is_some_and(|s| s.len() > 64),
        "{what}: the password is not sealed: {msg}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_are_sealed_in_the_outbox_and_on_the_broker_and_still_open_on_the_host()
-> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    log_outbox(&stack.pool).await?;
    // The host is registered with its key; from now on nobody consumes, so what is sent stays
    // in the outbox copy and in the queues for the test to read.
    let host = stack.host.clone();
    let key: Option<String> =
        sqlx::query_scalar("SELECT public_key FROM guest_hosts WHERE id = $1")
            .bind(&host)
            .fetch_one(&stack.pool)
            .await?;
    assert!(key.is_some(), "the guest host reported no public key");
    stack.stop("taskmanager").await?;
    stack.stop("guest").await?;

    let password = format!("Pw-{}", Uuid::new_v4().simple());
    let id = create(&stack, "pg-sealed", Some(&password)).await?;
    // The API publishes in the background; then the create sits in the `taskmanager` queue.
    let queued = wait_until(
        "the create to reach the taskmanager queue",
        Duration::from_secs(30),
        || async {
            let bodies = peek_queue(&stack.amqp, "taskmanager").await?;
            Ok((!bodies.is_empty()).then_some(bodies))
        },
    )
    .await?;
    assert_eq!(queued.len(), 1, "one create_instance is queued");
    assert_absent(&queued[0], &password, "the taskmanager queue");
    assert_one_sealed_user(&queued[0], "create_instance on the broker")?;
    let written = outbox_log(&stack.pool).await?;
    let creates: Vec<_> = written
        .iter()
        .filter(|r| r.method.as_deref() == Some("create_instance"))
        .collect();
    assert_eq!(creates.len(), 1, "{written:?}");
    for row in &written {
        assert_absent(&row.body, &password, "an outbox row");
    }

    // The taskmanager opens the API's seal and seals again for the host: the prepare waits in
    // the host's queue, its agent still stopped.
    stack.start_taskmanager();
    let host_queue = format!("guesthost.{host}");
    let prepares = wait_until(
        "the prepare to reach the host's queue",
        Duration::from_secs(30),
        || async {
            let bodies = peek_queue(&stack.amqp, &host_queue).await?;
            Ok((!bodies.is_empty()).then_some(bodies))
        },
    )
    .await?;
    assert_eq!(prepares.len(), 1);
    assert_absent(&prepares[0], &password, "the host's queue");
    assert_one_sealed_user(&prepares[0], "prepare on the broker")?;
    assert_ne!(
        inner(&prepares[0])?["args"]["users"][0]["password"],
        inner(&queued[0])?["args"]["users"][0]["password"],
        "the prepare is sealed anew for the host"
    );
    let written = outbox_log(&stack.pool).await?;
    assert!(
        written
            .iter()
            .any(|r| r.method.as_deref() == Some("prepare") && r.topic == host_queue),
        "{written:?}"
    );
    for row in &written {
        assert_absent(&row.body, &password, "an outbox row");
    }

    // The host opens it: the tenant logs in over TCP with exactly the password it chose, and
    // with no other (the server asks for a password on TCP).
    stack.start_guest();
    stack.wait_active(id).await?;
    let mut conn = stack
        .connect_instance_as(id, "app", &password, "appdb")
        .await?;
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(user, "app");
    let wrong = stack
        .connect_instance_as(id, "app", &format!("{password}x"), "appdb")
        .await;
    assert!(wrong.is_err(), "a wrong password must be refused");
    drop(conn);
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_with_passwords_is_never_placed_on_a_host_without_a_key() -> Result<()> {
    let stack = Stack::start(Daemons {
        guest: false,
        ..ALL
    })
    .await?;
    log_outbox(&stack.pool).await?;
    let keyless = format!("keyless-{}", stack.id);
    sqlx::query(
        "INSERT INTO guest_hosts (id, address, capacity, last_heartbeat) \
         VALUES ($1, '127.0.0.1', 5, now())",
    )
    .bind(&keyless)
    .execute(&stack.pool)
    .await?;

    let id = create(&stack, "pg-keyless", Some("keyless-secret-1")).await?;
    let inst = stack
        .wait_status(id, "ERROR", "", Duration::from_secs(30))
        .await?;
    assert!(
        inst["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("can receive the instance's passwords")),
        "{inst}"
    );
    let host: Option<String> = sqlx::query_scalar("SELECT host FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(host, None, "the instance was not placed");

    // The same host takes a create that carries no secret: only the key was missing.
    let plain = create(&stack, "pg-no-users", None).await?;
    wait_until(
        "the create without users to be placed",
        Duration::from_secs(30),
        || async {
            let host: Option<String> =
                sqlx::query_scalar("SELECT host FROM instances WHERE id = $1")
                    .bind(plain)
                    .fetch_one(&stack.pool)
                    .await?;
            Ok((host.as_deref() == Some(keyless.as_str())).then_some(()))
        },
    )
    .await?;
    let prepares: Vec<_> = outbox_log(&stack.pool)
        .await?
        .into_iter()
        .filter(|r| r.method.as_deref() == Some("prepare"))
        .map(|r| inner(&r.body))
        .collect::<Result<_>>()?;
    assert_eq!(
        prepares.len(),
        1,
        "only the create without users: {prepares:?}"
    );
    assert_eq!(prepares[0]["args"]["instance_id"], json!(plain));
    // Nobody runs the keyless host, so the second build is left to the sweeper's deadline.
    stack.shutdown().await;
    Ok(())
}

#[test]
fn the_absence_check_finds_a_password_in_every_form() {
    let secret = "Pw-0123456789abcdef";
    let found =
        |body: Vec<u8>| std::panic::catch_unwind(|| assert_absent(&body, secret, "probe")).is_err();
    let nested = json!({"oslo.message": json!({"args": {"p": secret}}).to_string()});
    for (k, prefix) in ["", "a", "ab"].iter().enumerate() {
        let b64 = STANDARD.encode(format!("{prefix}{secret}tail"));
        assert!(found(format!("xx{b64}yy").into_bytes()), "alignment {k}");
    }
    assert!(found(secret.as_bytes().to_vec()));
    assert!(found(hex::encode(secret).into_bytes()));
    assert!(found(nested.to_string().into_bytes()));
    assert!(found(
        json!({"s": URL_SAFE_NO_PAD.encode(secret)})
            .to_string()
            .into_bytes()
    ));
    assert!(!found(
        json!({"sealed": STANDARD.encode([7u8; 80])})
            .to_string()
            .into_bytes()
    ));
}
