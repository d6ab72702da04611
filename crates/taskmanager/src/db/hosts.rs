//! Guest hosts: registration by the operator, liveness from heartbeats, and placement of new
//! instances.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A registered host as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Host {
    pub id: String,
    pub address: String,
    pub capacity: i32,
    pub broker_user: Option<String>,
    pub enabled: bool,
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Instances placed on it and not deleted, and its unfinished previews (see [`USED`]).
    pub used: i64,
}

/// The slots host `h` uses: its instances not deleted, plus each preview not finished yet (a
/// preview's staged copy is a second server on the host, from acceptance to confirm, cancel or
/// expiry). trove-api counts the same way before it accepts a preview.
const USED: &str = "((SELECT count(*) FROM instances i WHERE i.host = h.id AND NOT i.deleted) \
     + (SELECT count(*) FROM recoveries r JOIN instances i ON i.id = r.instance_id \
        WHERE i.host = h.id AND r.preview AND r.state IN ('NEW', 'RUNNING', 'PREVIEW')))";

fn select_host() -> String {
    format!(
        "SELECT h.id, h.address, h.capacity, h.broker_user, h.enabled, h.last_heartbeat, \
         {USED} AS used FROM guest_hosts h"
    )
}

pub async fn get(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Host>> {
    sqlx::query_as(&format!(
        "{} WHERE h.id = $1 FOR UPDATE OF h",
        select_host()
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Host>> {
    sqlx::query_as(&format!("{} ORDER BY h.id", select_host()))
        .fetch_all(conn)
        .await
}

/// Registers `id` (or registers a removed host again) with its broker user and capacity. It is
/// not eligible for placement until its first heartbeat, which also reports its current public
/// key (a key from an earlier registration is forgotten).
pub async fn register(
    conn: &mut PgConnection,
    id: &str,
    broker_user: &str,
    capacity: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO guest_hosts (id, address, capacity, broker_user, enabled, last_heartbeat) \
         VALUES ($1, '', $2, $3, true, NULL) \
         ON CONFLICT (id) DO UPDATE SET capacity = $2, broker_user = $3, enabled = true, \
         last_heartbeat = NULL, public_key = NULL",
    )
    .bind(id)
    .bind(capacity)
    .bind(broker_user)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_capacity(conn: &mut PgConnection, id: &str, capacity: i32) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE guest_hosts SET capacity = $2 WHERE id = $1 AND enabled")
        .bind(id)
        .bind(capacity)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Takes a host out of service: no placement, and no broker user maps to it any more. The row
/// stays because instances keep referring to it.
pub async fn remove(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE guest_hosts SET enabled = false, broker_user = NULL WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The enabled host a broker user was issued to.
pub async fn by_broker_user(conn: &mut PgConnection, user: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT id FROM guest_hosts WHERE broker_user = $1 AND enabled")
        .bind(user)
        .fetch_optional(conn)
        .await
}

/// Records a heartbeat of a registered host: its address and when it was last seen.
pub async fn seen(
    conn: &mut PgConnection,
    id: &str,
    address: &str,
    seen: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE guest_hosts SET address = $2, \
         last_heartbeat = greatest(coalesce(last_heartbeat, $3), $3) WHERE id = $1 AND enabled",
    )
    .bind(id)
    .bind(address)
    .bind(seen)
    .execute(conn)
    .await?;
    Ok(())
}

/// Enabled hosts, whose provisioning queues must exist.
pub async fn enabled(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM guest_hosts WHERE enabled ORDER BY id")
        .fetch_all(conn)
        .await
}

/// Whether `id` is enabled and has sent a heartbeat within `expiry_secs`.
pub async fn is_live(conn: &mut PgConnection, id: &str, expiry_secs: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM guest_hosts WHERE id = $1 AND enabled \
         AND last_heartbeat > now() - make_interval(secs => $2))",
    )
    .bind(id)
    .bind(expiry_secs as f64)
    .fetch_one(conn)
    .await
}

/// The live, enabled host with the most free capacity, locked so two builds do not both take
/// its last slot. With `needs_key`, only among hosts whose public key is known (the create
/// carries secrets).
pub async fn choose(
    conn: &mut PgConnection,
    expiry_secs: i64,
    needs_key: bool,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(&format!(
        "SELECT h.id FROM guest_hosts h \
         WHERE h.enabled AND h.last_heartbeat > now() - make_interval(secs => $1) \
         AND (NOT $2 OR h.public_key IS NOT NULL) \
         AND h.capacity > {USED} \
         ORDER BY h.capacity - {USED} DESC, h.id \
         LIMIT 1 FOR UPDATE OF h",
    ))
    .bind(expiry_secs as f64)
    .bind(needs_key)
    .fetch_optional(conn)
    .await
}

/// Records the public key a host reported; only a registered host's row is touched.
pub async fn set_public_key(conn: &mut PgConnection, id: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE guest_hosts SET public_key = $2 WHERE id = $1 AND public_key IS DISTINCT FROM $2",
    )
    .bind(id)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// The public key secrets for `id` are sealed for, if the host reported one.
pub async fn public_key(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<String>> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT public_key FROM guest_hosts WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}
