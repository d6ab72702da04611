//! Create options python-troveclient can send that this API does not implement: each one a user
//! really set is refused (400 for a malformed value, 501 naming the option), never dropped.

use serde_json::{Map, Value};

use crate::{
    error::{ApiError, ApiResult},
    limits,
    validate::{self, bad},
};

/// The region every instance reports (the `instances.region_id` default).
const REGION: &str = "RegionOne";

/// Trove's `locality` values: anything else is a bad value, not a missing feature.
const LOCALITIES: [&str; 4] = [
    "affinity",
    "soft-affinity",
    "anti-affinity",
    "soft-anti-affinity",
];

fn not_implemented(option: &str, why: &str) -> ApiError {
    ApiError::NotImplemented(format!("Option '{option}' is not implemented: {why}."))
}

/// A string option, set when it is a non-empty string. The client sends some keys with `null`
/// or leaves them out when the user gave no value, so those are not a request.
fn set_string<'a>(v: Option<&'a Value>, what: &str) -> ApiResult<Option<&'a str>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let s = validate::string(v, what, limits::REF_CHARS)?;
            Ok((!s.is_empty()).then_some(s))
        }
    }
}

/// A list option, set when it is a non-empty list.
fn set_list(v: Option<&Value>, what: &str) -> ApiResult<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Array(items)) => Ok(!items.is_empty()),
        Some(_) => Err(bad(format!("Validation error: {what} must be a list"))),
    }
}

/// Refuses the options of `inst` (an `instance` object of a create body) that were set but that
/// nothing here would act on. Runs after the databases and users were parsed, so their lists are
/// known to be well formed.
pub(super) fn refuse_unimplemented(inst: &Map<String, Value>) -> ApiResult<()> {
    if let Some(Value::Object(vol)) = inst.get("volume")
        && set_string(vol.get("type"), "instance['volume']['type']")?.is_some()
    {
        return Err(not_implemented(
            "volume.type",
            "there are no volume types; send null or leave it out",
        ));
    }
    if set_string(
        inst.get("availability_zone"),
        "instance['availability_zone']",
    )?
    .is_some()
    {
        return Err(not_implemented(
            "availability_zone",
            "instances are placed on the registered hosts, not in zones",
        ));
    }
    if let Some(r) = set_string(inst.get("region_name"), "instance['region_name']")?
        && r != REGION
    {
        return Err(not_implemented(
            "region_name",
            &format!("there is one region, {REGION}"),
        ));
    }
    if set_list(inst.get("nics"), "instance['nics']")? {
        return Err(not_implemented(
            "nics",
            "instances are reached on their host's address",
        ));
    }
    if let Some(l) = set_string(inst.get("locality"), "instance['locality']")? {
        if !LOCALITIES.contains(&l) {
            return Err(bad(format!(
                "Validation error: instance['locality'] must be one of {}",
                LOCALITIES.join(", ")
            )));
        }
        return Err(not_implemented(
            "locality",
            "there are no server groups to place instances in",
        ));
    }
    if set_list(inst.get("modules"), "instance['modules']")? {
        return Err(not_implemented("modules", "there are no modules to apply"));
    }
    if set_string(inst.get("replica_of"), "instance['replica_of']")?.is_some() {
        return Err(not_implemented(
            "replica_of",
            "replication is not supported",
        ));
    }
    if !matches!(inst.get("replica_count"), None | Some(Value::Null)) {
        return Err(not_implemented(
            "replica_count",
            "replication is not supported",
        ));
    }
    refuse_entry_options(inst)
}

/// Per-database `character_set`/`collate` and per-user `host`: PostgreSQL roles have no host
/// part (`%`, any host, is what every role is), and databases take the server's encoding.
pub(crate) fn refuse_entry_options(inst: &Map<String, Value>) -> ApiResult<()> {
    let entries = |key: &str| match inst.get(key) {
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    for (i, d) in entries("databases").iter().enumerate() {
        for option in ["character_set", "collate"] {
            let what = format!("instance['databases'][{i}]['{option}']");
            if set_string(d.get(option), &what)?.is_some() {
                return Err(not_implemented(
                    &format!("databases[].{option}"),
                    "databases are created with the server's encoding and collation",
                ));
            }
        }
    }
    for (i, u) in entries("users").iter().enumerate() {
        let what = format!("instance['users'][{i}]['host']");
        if let Some(h) = set_string(u.get("host"), &what)?
            && h != "%"
        {
            return Err(not_implemented(
                "users[].host",
                "PostgreSQL users are not bound to a host; send '%' or leave it out",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(v: Value) -> Result<(), String> {
        let obj = v.as_object().expect("test bodies are objects");
        refuse_unimplemented(obj).map_err(|e| e.to_string())
    }

    #[test]
    fn unset_options_pass_as_the_client_sends_them() {
        assert_eq!(
            check(json!({
                "volume": {"size": 1, "type": null}, "availability_zone": "", "nics": [],
                "modules": null, "region_name": "RegionOne",
                "users": [{"name": "u", "host": "%"}, {"name": "v", "host": null}],
                "databases": [{"name": "d", "character_set": null, "collate": ""}],
            })),
            Ok(())
        );
    }

    #[test]
    fn set_options_are_501_and_malformed_ones_400() {
        for (body, named) in [
            (json!({"volume": {"size": 1, "type": "ssd"}}), "volume.type"),
            (json!({"availability_zone": "nova"}), "availability_zone"),
            (json!({"region_name": "Elsewhere"}), "region_name"),
            (json!({"nics": [{"net-id": "a"}]}), "nics"),
            (json!({"locality": "affinity"}), "locality"),
            (json!({"modules": [{"id": "m"}]}), "modules"),
            (json!({"replica_of": "x"}), "replica_of"),
            (json!({"replica_count": 2}), "replica_count"),
            (
                json!({"databases": [{"name": "d", "collate": "C"}]}),
                "databases[].collate",
            ),
            (
                json!({"users": [{"name": "u", "host": "10.0.0.1"}]}),
                "users[].host",
            ),
        ] {
            let err = check(body.clone()).expect_err("refused");
            assert!(
                err.contains(&format!("'{named}' is not implemented")),
                "{body}: {err}"
            );
        }
        for body in [
            json!({"locality": "near"}),
            json!({"nics": "net"}),
            json!({"availability_zone": 3}),
            json!({"users": [{"name": "u", "host": ["%"]}]}),
        ] {
            let err = check(body.clone()).expect_err("refused");
            assert!(err.contains("Validation error"), "{body}: {err}");
        }
    }
}
