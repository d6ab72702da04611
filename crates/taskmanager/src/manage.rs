//! `trove-manage`: schema sync, catalogue registration and guest host registration for
//! operators.

pub mod broker_admin;
pub mod hosts;
pub mod store_usage;

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use uuid::Uuid;

/// Registers (or updates) a datastore version and makes it the datastore's default.
pub async fn register_datastore_version(
    pool: &PgPool,
    datastore: &str,
    version_name: &str,
    version_number: &str,
    manager: &str,
) -> Result<Uuid> {
    let mut tx = pool.begin().await?;
    let ds_id: Uuid = sqlx::query_scalar(
        "INSERT INTO datastores (id, name) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(datastore)
    .fetch_one(&mut *tx)
    .await?;
    let v_id: Uuid = sqlx::query_scalar(
        "INSERT INTO datastore_versions (id, datastore_id, name, version, manager, active) \
         VALUES ($1, $2, $3, $4, $5, true) \
         ON CONFLICT ON CONSTRAINT ds_versions DO UPDATE SET manager = EXCLUDED.manager, active = true \
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(ds_id)
    .bind(version_name)
    .bind(version_number)
    .bind(manager)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE datastores SET default_version_id = $2 WHERE id = $1")
        .bind(ds_id)
        .bind(v_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(v_id)
}

pub async fn add_flavor(
    pool: &PgPool,
    id: &str,
    name: &str,
    ram: i32,
    vcpus: i32,
    disk: i32,
) -> Result<()> {
    if id.is_empty() || name.is_empty() || ram <= 0 || vcpus <= 0 || disk < 0 {
        bail!("a flavor needs an id, a name, ram > 0, vcpus > 0 and disk >= 0");
    }
    sqlx::query(
        "INSERT INTO flavors (id, name, ram, vcpus, disk) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET name = $2, ram = $3, vcpus = $4, disk = $5",
    )
    .bind(id)
    .bind(name)
    .bind(ram)
    .bind(vcpus)
    .bind(disk)
    .execute(pool)
    .await
    .with_context(|| format!("adding flavor {id}"))?;
    Ok(())
}

/// What a fresh install needs to be usable: PostgreSQL 15 and a few flavors.
pub async fn bootstrap(pool: &PgPool) -> Result<()> {
    register_datastore_version(pool, "postgresql", "15", "15", "postgresql").await?;
    for (id, name, ram, vcpus, disk) in [
        ("1", "m1.tiny", 512, 1, 1),
        ("2", "m1.small", 2048, 1, 20),
        ("3", "m1.medium", 4096, 2, 40),
        ("4", "m1.large", 8192, 4, 80),
    ] {
        add_flavor(pool, id, name, ram, vcpus, disk).await?;
    }
    Ok(())
}
