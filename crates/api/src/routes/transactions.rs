//! `GET /instances/{id}/transactions[/{lid}]`: the accident listing. What each transaction that
//! committed between two times did per relation, read by the guest from the WAL store, each with
//! the recovery target that undoes it (docs/api.md, "Find the accident").
//!
//! A request is a `wal_listings` row and a task like any other (persisted, then sent); the API
//! waits up to `guest_wait_secs` for the guest's answer and otherwise answers 202 with the
//! listing's id, to be read from `…/transactions/{lid}`.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use trove_common::{
    rpc::taskmanager::TaskManagerMethod,
    wal_activity::{Activity, ChangeKind, ListingState, MAX_RELATION_LEN, Transaction},
};
use uuid::Uuid;

use super::{dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    auth::Caller,
    db::instances,
    error::{ApiError, ApiResult},
    extract::Paging,
    recovery_window::rfc3339,
    state::AppState,
    validate::{self, bad},
    views::Links,
};

/// How often the row is read while the API waits for the guest.
const POLL: Duration = Duration::from_millis(50);
/// A listing still running after this long is taken for lost (its guest died): it no longer
/// blocks a new one.
const STALE_SECS: i64 = 120;

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/transactions",
            list_transactions,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/transactions/{lid}",
            show_listing,
        )
}

/// What a request asks for, checked.
#[derive(Debug, PartialEq)]
struct Query {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    kind: Option<ChangeKind>,
    relation: Option<String>,
}

/// An RFC 3339 time with a zone offset. A `+` that a query string turned into a space is read
/// back as `+`.
fn parse_time(v: &str, what: &str) -> ApiResult<DateTime<Utc>> {
    validate::text(v, what, 64)?;
    let fixed = v.replacen(' ', "+", 1);
    chrono::DateTime::parse_from_rfc3339(&fixed)
        .map(|t| t.to_utc())
        .map_err(|_| {
            bad(format!(
                "{what} '{v}' is not an RFC 3339 time with a zone offset (e.g. 2026-11-25T17:00:00Z)."
            ))
        })
}

fn parse_query(paging: &Paging, now: DateTime<Utc>) -> ApiResult<Query> {
    if paging.limit.is_some() || paging.marker.is_some() {
        return Err(bad(
            "This listing does not page: narrow it with since and until.",
        ));
    }
    if let Some((k, _)) = paging
        .params
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "since" | "until" | "kind" | "relation"))
    {
        return Err(bad(format!(
            "Unknown query parameter '{k}' (allowed: since, until, kind, relation)."
        )));
    }
    let since = paging
        .param("since")
        .ok_or_else(|| bad("since is required: an RFC 3339 time with a zone offset."))
        .and_then(|v| parse_time(v, "since"))?;
    let until = match paging.param("until") {
        Some(v) => parse_time(v, "until")?,
        None => now,
    };
    if since >= until {
        return Err(bad("since must be before until."));
    }
    let kind = paging
        .param("kind")
        .map(|k| {
            ChangeKind::parse(&k.to_ascii_uppercase()).ok_or_else(|| {
                let all: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                bad(format!("kind '{k}' is not one of {}.", all.join(", ")))
            })
        })
        .transpose()?;
    let relation = paging
        .param("relation")
        .map(|r| {
            validate::text(r, "relation", MAX_RELATION_LEN)?;
            if r.is_empty() {
                return Err(bad("relation must not be empty."));
            }
            Ok(r.to_string())
        })
        .transpose()?;
    Ok(Query {
        since,
        until,
        kind,
        relation,
    })
}

fn transaction_view(t: &Transaction) -> Value {
    json!({
        "xid": t.xid,
        "timeline": t.timeline,
        "lsn": t.lsn,
        "commit_time": rfc3339(t.commit_time),
        "changes": t.changes,
        "more_changes": t.more_changes,
        // Recovering to just before this transaction's commit undoes it and keeps everything
        // that committed earlier.
        "undo": {"xid": t.xid, "inclusive": false},
    })
}

/// A listing row as the API answers it.
#[derive(sqlx::FromRow)]
struct ListingRow {
    id: Uuid,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    kind: Option<String>,
    relation: Option<String>,
    state: ListingState,
    result: Option<sqlx::types::Json<Activity>>,
}

const ROW: &str = "SELECT id, since, until, kind, relation, state, result FROM wal_listings";

fn answer(
    row: ListingRow,
    links: &Links,
    instance_id: Uuid,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let head = json!({
        "id": row.id,
        "since": rfc3339(row.since),
        "until": rfc3339(row.until),
        "kind": row.kind,
        "relation": row.relation,
    });
    match (row.state, row.result) {
        (ListingState::Completed, Some(sqlx::types::Json(a))) => {
            let mut body = head;
            body["status"] = json!(ListingState::Completed);
            body["truncated"] = json!(a.truncated);
            body["segments_read"] = json!(a.segments);
            body["transactions"] =
                Value::Array(a.transactions.iter().map(transaction_view).collect());
            Ok((StatusCode::OK, Json(json!({"listing": body}))))
        }
        // What failed is in the guest's log; it may name host paths, so it is not echoed.
        (ListingState::Failed, _) => Err(ApiError::Unprocessable(format!(
            "The WAL of instance {instance_id} could not be read for listing {}.",
            row.id
        ))),
        _ => {
            let mut body = head;
            body["status"] = json!("RUNNING");
            body["href"] = json!(format!(
                "{}/v1.0/{}/instances/{instance_id}/transactions/{}",
                links.base, links.tenant, row.id
            ));
            Ok((StatusCode::ACCEPTED, Json(json!({"listing": body}))))
        }
    }
}

async fn visible_instance(
    conn: &mut PgConnection,
    caller: &Caller,
    links: &Links,
    id: &str,
) -> ApiResult<instances::InstanceRow> {
    let id = path_uuid(id)?;
    instances::find(conn, id, caller.scope(&links.tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))
}

async fn list_transactions(
    State(state): State<AppState>,
    caller: Caller,
    links: Links,
    dispatch: Dispatch,
    Path((_tenant, id)): Path<(String, String)>,
    paging: Paging,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    let mut tx = state.pool.begin().await?;
    // Locked: one listing at a time per instance, and an identical one still running is joined.
    let inst = instances::lock(&mut tx, id, caller.scope(&links.tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let q = parse_query(&paging, Utc::now())?;
    if inst.host.is_none() {
        return Err(ApiError::Unprocessable(format!(
            "Instance {} has no WAL to list yet.",
            inst.id
        )));
    }
    let running: Option<ListingRow> = sqlx::query_as(&format!(
        "{ROW} WHERE instance_id = $1 AND state = ANY($3) \
         AND created > now() - make_interval(secs => $2) ORDER BY created DESC LIMIT 1"
    ))
    .bind(inst.id)
    .bind(STALE_SECS as f64)
    .bind([ListingState::New, ListingState::Sent])
    .fetch_optional(&mut *tx)
    .await?;
    let listing_id = match running {
        Some(r)
            if r.since == q.since
                && r.until == q.until
                && r.kind.as_deref() == q.kind.map(ChangeKind::as_str)
                && r.relation == q.relation =>
        {
            tx.commit().await?;
            r.id
        }
        Some(r) => {
            return Err(ApiError::Conflict(format!(
                "Listing {} of instance {} is still running; read it at its href or retry when it ends.",
                r.id, inst.id
            )));
        }
        None => {
            // Listings are answers to questions, not records: a day later they go.
            sqlx::query(
                "DELETE FROM wal_listings WHERE instance_id = $1 AND created < now() - interval '1 day'",
            )
            .bind(inst.id)
            .execute(&mut *tx)
            .await?;
            let listing_id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO wal_listings (id, instance_id, tenant_id, since, until, kind, relation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(listing_id)
            .bind(inst.id)
            .bind(&inst.tenant_id)
            .bind(q.since)
            .bind(q.until)
            .bind(q.kind.map(ChangeKind::as_str))
            .bind(&q.relation)
            .execute(&mut *tx)
            .await?;
            let method = TaskManagerMethod::ListTransactions {
                instance_id: inst.id,
                listing_id,
            };
            dispatch.send(tx, &method).await?;
            tracing::info!(instance.id = %inst.id, listing.id = %listing_id, "transaction listing accepted");
            listing_id
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(state.config.guest_wait_secs);
    loop {
        let row = fetch(&mut *state.pool.acquire().await?, inst.id, listing_id)
            .await?
            .ok_or_else(|| ApiError::not_found(listing_id))?;
        let settled = matches!(row.state, ListingState::Completed | ListingState::Failed);
        if settled || tokio::time::Instant::now() >= deadline {
            return answer(row, &links, inst.id);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn fetch(
    conn: &mut PgConnection,
    instance_id: Uuid,
    listing_id: Uuid,
) -> sqlx::Result<Option<ListingRow>> {
    sqlx::query_as(&format!("{ROW} WHERE id = $1 AND instance_id = $2"))
        .bind(listing_id)
        .bind(instance_id)
        .fetch_optional(conn)
        .await
}

async fn show_listing(
    State(state): State<AppState>,
    caller: Caller,
    links: Links,
    Path((_tenant, id, lid)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut conn = state.pool.acquire().await?;
    let inst = visible_instance(&mut conn, &caller, &links, &id).await?;
    let lid = path_uuid(&lid)?;
    let row = fetch(&mut conn, inst.id, lid)
        .await?
        .ok_or_else(|| ApiError::not_found(lid))?;
    answer(row, &links, inst.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(pairs: &[(&str, &str)]) -> Paging {
        Paging {
            params: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Paging::default()
        }
    }

    #[test]
    fn a_query_needs_since_before_until_and_known_keys() {
        let now = Utc::now();
        let q = parse_query(&paging(&[("since", "2026-11-29T10:00:00Z")]), now).expect("as built");
        assert_eq!(q.until, now);
        assert!(q.kind.is_none() && q.relation.is_none());
        let q = parse_query(
            &paging(&[
                ("since", "2026-11-29T10:00:00 01:00"),
                ("until", "2026-11-29T10:00:00Z"),
                ("kind", "drop"),
                ("relation", "public.orders"),
            ]),
            now,
        )
        .expect("as built");
        assert_eq!(
            q.since.to_rfc3339(),
            "2026-11-29T09:00:00+00:00",
            "a + read as a space"
        );
        assert_eq!(q.kind, Some(ChangeKind::Drop));
        for bad in [
            vec![],
            vec![("since", "yesterday")],
            vec![("since", "2026-11-29T10:00:00")],
            vec![
                ("since", "2026-11-29T10:00:00Z"),
                ("until", "2026-11-29T09:00:00Z"),
            ],
            vec![("since", "2026-11-29T10:00:00Z"), ("kind", "MERGE")],
            vec![("since", "2026-11-29T10:00:00Z"), ("relation", "")],
            vec![("since", "2026-11-29T10:00:00Z"), ("sort", "xid")],
        ] {
            assert!(parse_query(&paging(&bad), now).is_err(), "{bad:?}");
        }
    }
}
