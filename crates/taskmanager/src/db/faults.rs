//! Instance faults: what a user reads when something went wrong.

use sqlx::PgConnection;
use trove_common::fault::FaultCode;
use uuid::Uuid;

/// Records a fault. `message` is what every caller of the API reads, so it is written by the
/// control plane (ids, phases, what to do) and never carries text from a guest: host paths, tool
/// output and server log lines go into `details`, which only admins see.
pub async fn record(
    conn: &mut PgConnection,
    instance_id: Uuid,
    code: FaultCode,
    message: &str,
    details: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO instance_faults (id, instance_id, error_code, message, details) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(instance_id)
    .bind(code.as_str())
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

/// A success of one kind clears the faults of earlier failures of that kind only.
pub async fn clear_codes(
    conn: &mut PgConnection,
    instance_id: Uuid,
    codes: &[FaultCode],
) -> sqlx::Result<()> {
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    sqlx::query(
        "UPDATE instance_faults SET deleted = true, deleted_at = now() \
         WHERE instance_id = $1 AND NOT deleted AND error_code = ANY($2)",
    )
    .bind(instance_id)
    .bind(&codes)
    .execute(conn)
    .await?;
    Ok(())
}
