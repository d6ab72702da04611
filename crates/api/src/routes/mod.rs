//! The HTTP surface: one module per resource, merged here.

pub mod backups;
pub mod datastores;
pub mod flavors;
pub mod instance_actions;
pub mod instances;
pub mod recover;
pub mod recovery_window;
pub mod versions;

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Duration, Utc};
use trove_common::{outbox, rpc::RequestContext};

use crate::{auth::Caller, request_id::RequestId, state::AppState, views::Links};

/// The RPC context for work started by this request.
pub fn context(caller: &Caller, rid: &RequestId) -> RequestContext {
    RequestContext {
        request_id: Some(rid.0.clone()),
        project_id: Some(caller.project_id.clone()),
        user: caller.user.clone(),
        is_admin: caller.is_admin,
        roles: caller.roles.clone(),
        guest_host: None,
    }
}

/// Base URL for links: the configured public endpoint, else the request's Host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if !state.config.public_endpoint.is_empty() {
        return state
            .config
            .public_endpoint
            .trim_end_matches('/')
            .to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:8779");
    format!("http://{host}")
}

pub fn links<'a>(base: &'a str, tenant: &'a str) -> Links<'a> {
    Links { base, tenant }
}

pub fn deadline_in(secs: i64) -> DateTime<Utc> {
    Utc::now() + Duration::seconds(secs)
}

/// Publishes committed outbox rows in the background: a handler never waits on the broker.
pub fn flush_later(state: &AppState, ids: Vec<i64>) {
    let pool = state.pool.clone();
    let bus = state.bus.clone();
    tokio::spawn(async move { outbox::flush(&pool, &bus, &ids).await });
}
