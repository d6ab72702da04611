//! Guest hosts: registration by heartbeat, and placement of new instances.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub async fn upsert(
    conn: &mut PgConnection,
    id: &str,
    address: &str,
    capacity: i32,
    seen: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO guest_hosts (id, address, capacity, last_heartbeat) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET address = $2, capacity = $3, \
         last_heartbeat = greatest(guest_hosts.last_heartbeat, $4)",
    )
    .bind(id)
    .bind(address)
    .bind(capacity)
    .bind(seen)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live host with the most free capacity, locked so two builds do not both take its last slot.
/// With `needs_key`, only among hosts whose public key is known (the create carries secrets).
pub async fn choose(
    conn: &mut PgConnection,
    expiry_secs: i64,
    needs_key: bool,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT h.id FROM guest_hosts h \
         WHERE h.last_heartbeat > now() - make_interval(secs => $1) \
         AND (NOT $2 OR h.public_key IS NOT NULL) \
         AND h.capacity > (SELECT count(*) FROM instances i WHERE i.host = h.id AND NOT i.deleted) \
         ORDER BY h.capacity - (SELECT count(*) FROM instances i WHERE i.host = h.id AND NOT i.deleted) DESC, h.id \
         LIMIT 1 FOR UPDATE OF h",
    )
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
