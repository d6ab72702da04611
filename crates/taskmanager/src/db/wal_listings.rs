//! Accident listing rows: NEW until forwarded to the guest (SENT), then settled once by its
//! report.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use trove_common::wal_activity::ListingState;
use uuid::Uuid;

/// What a row asks for, locked, with its instance and state.
#[derive(Debug, sqlx::FromRow)]
pub struct Listing {
    pub instance_id: Uuid,
    pub state: ListingState,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub kind: Option<String>,
    pub relation: Option<String>,
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Listing>> {
    sqlx::query_as(
        "SELECT instance_id, state, since, until, kind, relation FROM wal_listings \
         WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn mark_sent(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE wal_listings SET state = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(ListingState::Sent)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    result: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE wal_listings SET state = $3, result = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(result)
        .bind(ListingState::Completed)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn fail(conn: &mut PgConnection, id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE wal_listings SET state = $3, error = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .bind(ListingState::Failed)
        .execute(conn)
        .await?;
    Ok(())
}
