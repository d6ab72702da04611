//! The HTTP surface: one module per resource, merged here.

pub mod accounts;
pub mod availability;
pub mod backups;
pub mod configuration_parameters;
pub mod configurations;
pub mod datastores;
pub mod dispatch;
pub mod flavors;
pub mod instance_actions;
pub mod instances;
pub mod limits;
pub mod mgmt_instances;
pub mod openapi;
pub mod preview;
pub mod preview_move;
pub mod quotas;
pub mod recover;
pub mod recoveries;
pub mod recovery_window;
pub mod restore_points;
pub mod rewind;
pub mod table;
pub mod transactions;
pub mod versions;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use self::table::{Route, Routes};
use crate::error::{ApiError, ApiResult};

/// Routes anyone may call: the version documents, the health check and the OpenAPI document.
pub fn public() -> Routes {
    versions::routes().merge(openapi::routes())
}

/// Routes under `/v1.0/{tenant}/`, which the router puts behind the token check.
pub fn tenant() -> Routes {
    instances::routes()
        .merge(instance_actions::routes())
        .merge(recover::routes())
        .merge(recoveries::routes())
        .merge(preview::routes())
        .merge(preview_move::routes())
        .merge(recovery_window::routes())
        .merge(restore_points::routes())
        .merge(rewind::routes())
        .merge(transactions::routes())
        .merge(backups::routes())
        .merge(datastores::routes())
        .merge(flavors::routes())
        .merge(accounts::routes())
        .merge(mgmt_instances::routes())
        .merge(quotas::routes())
        .merge(limits::routes())
        .merge(configurations::routes())
        .merge(configuration_parameters::routes())
}

/// Every (method, path) the API serves, sorted: what the OpenAPI document must describe.
pub fn table() -> Vec<Route> {
    let mut all: Vec<Route> = public().entries().to_vec();
    all.extend_from_slice(tenant().entries());
    all.sort();
    all
}

/// Path ids that are not UUIDs name nothing: 404, as for an unknown id.
pub fn path_uuid(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(id))
}

pub fn deadline_in(secs: i64) -> DateTime<Utc> {
    Utc::now() + Duration::seconds(secs)
}

/// Cuts `rows`, fetched with one row more than `limit`, to the page; true when another page
/// exists, so `next` appears only then and the CLI (which follows `next` until it is absent)
/// terminates.
pub fn cut_page<T>(rows: &mut Vec<T>, limit: i64) -> bool {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    more
}
