//! The control schema: one code path applies the migrations, under an advisory lock, and daemons
//! refuse to start against a database that is behind.

use anyhow::{Result, bail};
use sqlx::{PgPool, migrate::Migrator};

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Applies pending migrations (sqlx takes a PostgreSQL advisory lock while it does).
pub async fn sync(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Fails with an operator-readable message when the schema is missing or older than this build.
pub async fn ensure_current(pool: &PgPool) -> Result<()> {
    let applied: Vec<i64> = match sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
    {
        Ok(v) => v,
        Err(_) => bail!(
            "the control database has no trove schema; run `trove-manage db-sync` against it first"
        ),
    };
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the control database schema is behind this build (missing migrations {missing:?}); run `trove-manage db-sync`"
        );
    }
    Ok(())
}
