//! The live catalog's tables, per database, for the relation journal that names them in the
//! accident listing after they are dropped or rewritten.

use anyhow::Context as _;
use trove_common::wal_activity::JournalEntry;

use super::cluster::Cluster;

/// More tables than this in one database are not journalled beyond it (a bound, not a limit
/// anyone should meet).
const MAX_PER_DATABASE: i64 = 10_000;
/// Databases read per pass (by name): each costs a connection, and the pass runs every second.
const MAX_DATABASES: i64 = 100;

impl Cluster {
    /// Every table, partitioned table and materialized view of every database that takes
    /// connections, with its oid and current file.
    pub async fn read_relations(&self) -> anyhow::Result<Vec<JournalEntry>> {
        let mut conn = self.connect().await?;
        let databases: Vec<(i64, String)> = sqlx::query_as(
            "SELECT oid::int8, datname FROM pg_database \
             WHERE datallowconn AND NOT datistemplate ORDER BY datname LIMIT $1",
        )
        .bind(MAX_DATABASES)
        .fetch_all(&mut conn)
        .await
        .context("listing databases")?;
        let _ = sqlx::Connection::close(conn).await;
        let mut entries = Vec::new();
        for (db_oid, database) in databases {
            // A database dropped since the listing, or one refusing connections now, is skipped.
            let Ok(mut conn) = self.connect_to(&database).await else {
                continue;
            };
            let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
                "SELECT c.oid::int8, c.relfilenode::int8, n.nspname, c.relname \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'm') \
                   AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema']) \
                   AND n.nspname NOT LIKE 'pg\\_toast%' \
                 ORDER BY c.oid LIMIT $1",
            )
            .bind(MAX_PER_DATABASE)
            .fetch_all(&mut conn)
            .await
            .with_context(|| format!("listing the tables of {database:?}"))?;
            let _ = sqlx::Connection::close(conn).await;
            for (oid, file, schema, name) in rows {
                let (Ok(db_oid), Ok(oid), Ok(relfilenode)) = (
                    u32::try_from(db_oid),
                    u32::try_from(oid),
                    u32::try_from(file),
                ) else {
                    continue;
                };
                entries.push(JournalEntry {
                    db_oid,
                    database: database.clone(),
                    oid,
                    relfilenode,
                    schema,
                    name,
                });
            }
        }
        Ok(entries)
    }
}
