//! Instance faults: what a user reads when something went wrong.

use sqlx::PgConnection;
use uuid::Uuid;

pub async fn record(
    conn: &mut PgConnection,
    instance_id: Uuid,
    message: &str,
    details: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO instance_faults (id, instance_id, message, details) VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::new_v4())
    .bind(instance_id)
    .bind(message)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// A later success clears the faults of earlier failures.
pub async fn clear(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instance_faults SET deleted = true, deleted_at = now() WHERE instance_id = $1 AND NOT deleted",
    )
    .bind(instance_id)
    .execute(conn)
    .await?;
    Ok(())
}
