//! Trove's database, user and root extension routes on a running instance
//! (`/instances/{id}/databases`, `/users`, `/users/{user}/databases`, `/root`). Reads come from
//! what the guest last reported; changes go through [`crate::account_ops`].

mod access;
mod databases;
mod root;
mod users;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{availability::ensure_available, path_uuid, table::Routes};
use crate::{
    db::instances::{self, LockedInstance},
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

pub fn routes() -> Routes {
    databases::routes()
        .merge(users::routes())
        .merge(access::routes())
        .merge(root::routes())
}

/// The tenant's instance, locked and free for a change, with the transaction holding the lock.
async fn lock_available<'a>(
    state: &'a AppState,
    tenant: &str,
    id: &str,
) -> ApiResult<(Transaction<'a, Postgres>, LockedInstance)> {
    let id = path_uuid(id)?;
    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    ensure_available(&mut tx, &inst).await?;
    Ok((tx, inst))
}

/// The tenant's instance for a read: 404 unless it exists and is the tenant's.
async fn visible(state: &AppState, tenant: &str, id: &str) -> ApiResult<Uuid> {
    let id = path_uuid(id)?;
    let mut conn = state.pool.acquire().await?;
    instances::find(&mut conn, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(id)
}

/// A user as the client names it in a path: `name`, or `name@host` as troveclient sends it when
/// a host is given. PostgreSQL roles have no host part, so only `%` (any host) is accepted.
fn user_in_path(raw: &str) -> ApiResult<String> {
    let (name, host) = match raw.rsplit_once('@') {
        Some((n, h)) => (n, Some(h)),
        None => (raw, None),
    };
    if let Some(h) = host
        && h != "%"
    {
        return Err(ApiError::NotImplemented(format!(
            "Users are not bound to a host; '{}' names host '{}'. Use '%' or no host.",
            validate::printable(raw),
            validate::printable(h)
        )));
    }
    validate::pg_identifier(name, "user name")?;
    Ok(name.to_string())
}

/// A database named in a path, checked as a name tenants may create.
fn database_in_path(raw: &str) -> ApiResult<String> {
    validate::pg_identifier(raw, "database name")?;
    Ok(raw.to_string())
}

/// The index range of one page of `names` (sorted) after `marker`, with whether another page
/// follows.
fn page(names: &[String], marker: Option<&str>, limit: i64) -> (std::ops::Range<usize>, bool) {
    let start = match marker {
        Some(m) => names.partition_point(|n| n.as_str() <= m),
        None => 0,
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(names.len());
    (start..end, end < names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_in_paths_take_an_optional_any_host() {
        assert_eq!(user_in_path("app").expect("plain"), "app");
        assert_eq!(user_in_path("app@%").expect("any host"), "app");
        assert!(matches!(
            user_in_path("app@10.0.0.1"),
            Err(ApiError::NotImplemented(_))
        ));
        assert!(matches!(user_in_path("root"), Err(ApiError::BadRequest(_))));
        assert!(matches!(user_in_path("a;b"), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn pages_start_after_the_marker() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(page(&names, None, 2), (0..2, true));
        assert_eq!(page(&names, Some("b"), 2), (2..4, false));
        assert_eq!(page(&names, Some("bb"), 5), (2..4, false));
        assert_eq!(page(&names, Some("z"), 5), (4..4, false));
    }
}
