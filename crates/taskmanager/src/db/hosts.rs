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
pub async fn choose(conn: &mut PgConnection, expiry_secs: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT h.id FROM guest_hosts h \
         WHERE h.last_heartbeat > now() - make_interval(secs => $1) \
         AND h.capacity > (SELECT count(*) FROM instances i WHERE i.host = h.id AND NOT i.deleted) \
         ORDER BY h.capacity - (SELECT count(*) FROM instances i WHERE i.host = h.id AND NOT i.deleted) DESC, h.id \
         LIMIT 1 FOR UPDATE OF h",
    )
    .bind(expiry_secs as f64)
    .fetch_optional(conn)
    .await
}
