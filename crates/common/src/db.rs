//! Control-database pool set-up, with every limit taken from [`DatabaseConfig`].

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::config::DatabaseConfig;

pub async fn connect(cfg: &DatabaseConfig) -> Result<PgPool> {
    open(cfg, true).await
}

/// As [`connect`], without sqlx's ping of an idle connection before each use: for trove-api,
/// where it would be a second round trip on every request (a show is one statement). A
/// connection that broke while idle (the database restarted) then fails the one request that
/// draws it, and the pool replaces it.
pub async fn connect_unpinged(cfg: &DatabaseConfig) -> Result<PgPool> {
    open(cfg, false).await
}

async fn open(cfg: &DatabaseConfig, ping_before_use: bool) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(Duration::from_secs(cfg.acquire_timeout_secs))
        .test_before_acquire(ping_before_use)
        .connect(&cfg.url)
        .await
        .with_context(|| format!("connecting to the control database at {}", redact(&cfg.url)))
}

/// Hides a password in a connection URL before it reaches a log line.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_password_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(super::redact("postgres://u@h/d"), "postgres://u@h/d");
    }
}
