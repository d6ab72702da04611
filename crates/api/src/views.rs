//! JSON views in Trove's shapes.

use chrono::Utc;
use serde_json::{Value, json};
use trove_common::{
    status::{InstanceTask, ServiceStatus},
    timefmt::trove_time,
};

use crate::{
    db::{
        backups::BackupRow,
        catalog::{DatastoreRow, FlavorRow, VersionRow},
        instances::InstanceRow,
    },
    instance_status,
};

/// Builds `self` and `bookmark` links; a handler gets one as an extractor.
#[derive(Debug, Clone)]
pub struct Links {
    /// The public base URL, without a trailing slash.
    pub base: String,
    pub tenant: String,
}

impl Links {
    pub fn of(&self, collection: &str, id: &str) -> Value {
        json!([
            {"href": format!("{}/v1.0/{}/{collection}/{id}", self.base, self.tenant), "rel": "self"},
            {"href": format!("{}/{collection}/{id}", self.base), "rel": "bookmark"},
        ])
    }

    /// The `links` of a list page that has a successor: `path` from `marker` on, with the list's
    /// `filters`, so following `next` pages through the same list.
    pub fn next_page(
        &self,
        path: &str,
        limit: i64,
        marker: impl std::fmt::Display,
        filters: &[(&str, &str)],
    ) -> Value {
        let mut href = format!(
            "{}/v1.0/{}/{path}?limit={limit}&marker={marker}",
            self.base, self.tenant
        );
        for (k, v) in filters {
            href.push('&');
            href.push_str(k);
            href.push('=');
            href.push_str(&query_escape(v));
        }
        json!([{"rel": "next", "href": href}])
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters: a filter value is the client's
/// text and must not end the query or add a parameter.
fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn instance_summary(row: &InstanceRow, links: &Links, heartbeat_expiry_secs: i64) -> Value {
    let task = InstanceTask::from_code(row.task_id).unwrap_or(InstanceTask::None);
    let service = ServiceStatus::from_code(row.status_id).unwrap_or(ServiceStatus::Unknown);
    let stale = (Utc::now() - row.status_updated).num_seconds() >= heartbeat_expiry_secs;
    let derived = instance_status::derive(task, service, row.backup_running, stale);
    let addresses: Vec<Value> = match (&row.address, row.port) {
        (Some(a), Some(p)) => vec![json!({"address": a, "type": "private", "port": p})],
        _ => vec![],
    };
    let ip: Vec<Value> = addresses.iter().map(|a| a["address"].clone()).collect();
    json!({
        "id": row.id,
        "name": row.name,
        "status": derived.status,
        "operating_status": derived.operating_status,
        "links": links.of("instances", &row.id.to_string()),
        "flavor": {"id": row.flavor_id, "links": links.of("flavors", &row.flavor_id)},
        "datastore": {"type": row.ds_name, "version": row.ds_version_name},
        "region": row.region_id,
        "access": row.access.as_ref().map(|a| a.0.clone()).unwrap_or_else(|| json!({})),
        "volume": {"size": row.volume_size},
        "ip": ip,
        "addresses": addresses,
    })
}

/// Bytes in the GB Trove reports volumes in.
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Who reads a view: some parts are for admins only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Member,
    Admin,
}

pub fn instance_detail(
    row: &InstanceRow,
    links: &Links,
    heartbeat_expiry_secs: i64,
    audience: Audience,
) -> Value {
    let mut v = instance_summary(row, links, heartbeat_expiry_secs);
    let obj = v.as_object_mut().expect("summary is an object");
    obj.insert(
        "datastore".into(),
        json!({"type": row.ds_name, "version": row.ds_version_name, "version_number": row.ds_version_number}),
    );
    obj.insert("created".into(), json!(trove_time(row.created)));
    obj.insert("updated".into(), json!(trove_time(row.updated)));
    obj.insert(
        "service_status_updated".into(),
        json!(trove_time(row.status_updated)),
    );
    if let (Some(message), Some(created)) = (&row.fault_message, row.fault_created) {
        // As in Trove, `details` is null for everyone but admins: it holds what the guest said,
        // with host paths, tool output and server log lines. The message and the code are written
        // by the control plane for every reader.
        let details = match audience {
            Audience::Admin => row.fault_details.clone(),
            Audience::Member => None,
        };
        obj.insert(
            "fault".into(),
            json!({
                "message": message,
                "created": trove_time(created),
                "details": details,
                "error_code": row.fault_error_code,
            }),
        );
    }
    if let Some(id) = row.configuration_id {
        obj.insert(
            "configuration".into(),
            json!({
                "id": id,
                "name": row.configuration_name,
                "links": links.of("configurations", &id.to_string()),
            }),
        );
    }
    // Trove shows the space the data uses in GB, as a float.
    if let Some(bytes) = row.volume_used_bytes {
        let used = bytes as f64 / GIB;
        let mut volume = json!({"size": row.volume_size, "used": used});
        if let Some(size) = row.volume_size.filter(|s| *s > 0) {
            volume["used_percent"] = json!(used * 100.0 / f64::from(size));
        }
        obj.insert("volume".into(), volume);
    }
    if let Some(id) = row.recovery_id {
        let mut progress = row.recovery_progress.as_ref().map(|p| p.0.clone());
        if let (Some(Value::Object(p)), Some(phase), Some(updated)) =
            (progress.as_mut(), row.recovery_phase, row.recovery_updated)
        {
            let left = crate::recovery_eta::from_stored(
                phase.as_str(),
                row.recovery_progress.as_ref().map(|p| &p.0),
                updated,
                row.recovery_first_progress.as_ref().map(|p| &p.0),
                row.recovery_first_progress_at,
                chrono::Utc::now(),
            );
            p.insert("time_left_secs".into(), json!(left));
        }
        obj.insert(
            "recovery".into(),
            json!({
                "id": id,
                "backup": row.recovery_backup_id,
                "state": row.recovery_state,
                "phase": row.recovery_phase,
                "progress": progress,
                // Where a waiting preview listens: the instance's address, its own port.
                "preview": match (row.recovery_state.as_deref(), row.recovery_preview_port) {
                    (Some("PREVIEW"), Some(port)) => json!({
                        "address": row.address,
                        "port": port,
                        "expires_at": row.recovery_preview_expires_at.map(crate::recovery_window::rfc3339),
                    }),
                    _ => Value::Null,
                },
            }),
        );
    }
    v
}

pub fn backup(row: &BackupRow) -> Value {
    let mut v = json!({
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "locationRef": row.location,
        "instance_id": row.instance_id,
        "created": trove_time(row.created),
        "updated": trove_time(row.updated),
        "size": row.size,
        "status": row.state,
        "parent_id": row.parent_id,
        "project_id": row.tenant_id,
        "checksum": row.checksum,
        "backup_type": row.backup_type,
        "stop_time": row.stop_time.map(trove_time),
        "timeline": row.timeline,
    });
    if let (Some(vid), Some(ds), Some(ver)) =
        (row.datastore_version_id, &row.ds_name, &row.ds_version_name)
    {
        v["datastore"] = json!({"type": ds, "version": ver, "version_id": vid});
    }
    v
}

pub fn version(v: &VersionRow, links: &Links, with_datastore: bool) -> Value {
    let mut out = json!({
        "id": v.id,
        "name": v.name,
        "version": v.version,
        "links": links.of("datastores/versions", &v.id.to_string()),
    });
    if with_datastore {
        out["datastore"] = json!(v.datastore_id);
    }
    out
}

pub fn datastore(d: &DatastoreRow, versions: &[VersionRow], links: &Links) -> Value {
    let mut out = json!({
        "id": d.id,
        "name": d.name,
        "links": links.of("datastores", &d.id.to_string()),
        "versions": versions.iter().map(|v| version(v, links, false)).collect::<Vec<_>>(),
    });
    if let Some(def) = d.default_version_id {
        out["default_version"] = json!(def);
    }
    out
}

pub fn flavor(f: &FlavorRow, links: &Links) -> Value {
    // Trove's `id` is an integer when the id is one; `str_id` always holds the string.
    let int_id = f.id.parse::<i64>().ok().filter(|_| !f.id.starts_with('0'));
    json!({
        "id": int_id.map(Value::from).unwrap_or(Value::Null),
        "str_id": f.id,
        "name": f.name,
        "ram": f.ram,
        "vcpus": f.vcpus,
        "disk": f.disk,
        "ephemeral": f.ephemeral,
        "links": links.of("flavors", &f.id),
    })
}
