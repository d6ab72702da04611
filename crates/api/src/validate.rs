//! Pure request validation: turns untrusted JSON into domain values or a 400 message.

use serde_json::Value;
use trove_common::access::{Access, Cidr, MAX_ALLOWED_CIDRS};
use uuid::Uuid;

use crate::error::ApiError;

pub fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// The object under `key` at the top of a body (`{"instance": {...}}`).
pub fn root<'a>(
    body: &'a Value,
    key: &str,
) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    body.get(key)
        .ok_or_else(|| bad(format!("Validation error: '{key}' is a required property")))?
        .as_object()
        .ok_or_else(|| bad(format!("Validation error: '{key}' must be an object")))
}

/// Trove's `non_empty_string`: 1–255 characters with at least one letter or digit.
pub fn non_empty_name(v: Option<&Value>, what: &str) -> Result<String, ApiError> {
    let s = v
        .ok_or_else(|| bad(format!("Validation error: {what} is a required property")))?
        .as_str()
        .ok_or_else(|| bad(format!("Validation error: {what} must be a string")))?;
    if s.is_empty() || s.chars().count() > 255 || !s.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err(bad(format!(
            "Validation error: {what} '{s}' must be 1-255 characters with at least one letter or digit"
        )));
    }
    Ok(s.to_string())
}

/// A bare UUID, or an href whose last path segment is one.
pub fn uuid_ref(v: &Value, what: &str) -> Result<Uuid, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("Validation error: {what} must be a UUID string")))?;
    let last = s.trim_end_matches('/').rsplit('/').next().unwrap_or(s);
    Uuid::parse_str(last).map_err(|_| {
        bad(format!(
            "Validation error: {what} '{s}' is not a valid UUID"
        ))
    })
}

/// A bare UUID only.
pub fn uuid_strict(v: &Value, what: &str) -> Result<Uuid, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("Validation error: {what} must be a UUID string")))?;
    Uuid::parse_str(s).map_err(|_| {
        bad(format!(
            "Validation error: {what} '{s}' is not a valid UUID"
        ))
    })
}

/// A flavor reference: a string, an integer or an href.
pub fn flavor_ref(v: Option<&Value>) -> Result<String, ApiError> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(s)
            .to_string()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(other) => Err(bad(format!(
            "Validation error: instance['flavorRef'] {other} is not a valid flavor reference"
        ))),
        None => Err(bad(
            "Validation error: instance 'flavorRef' is a required property",
        )),
    }
}

/// `volume.size`: an integer ≥ 1 or a numeric string.
pub fn volume_size(v: Option<&Value>) -> Result<Option<i32>, ApiError> {
    let Some(vol) = v else { return Ok(None) };
    let Some(size) = vol.get("size") else {
        return Err(bad(
            "Validation error: instance['volume'] 'size' is a required property",
        ));
    };
    let n = match size {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=i32::MAX as i64).contains(&n) => Ok(Some(n as i32)),
        _ => Err(bad(format!(
            "Validation error: instance['volume']['size'] {size} is not a positive integer"
        ))),
    }
}

/// Trove's `access {is_public, allowed_cidrs}` of a create or an update, the one place it is
/// checked: an object with only those keys, `is_public` a boolean (default false),
/// `allowed_cidrs` a list of at most [`MAX_ALLOWED_CIDRS`] IPv4 or IPv6 CIDRs (a bare address is
/// one host), each once. CIDRs come back normalized (`10.1.2.3/8` is `10.0.0.0/8`), and a
/// duplicate is judged after that. Linear in the size of the list.
pub fn access(v: &Value) -> Result<Access, ApiError> {
    const WHAT: &str = "instance['access']";
    let obj = v
        .as_object()
        .ok_or_else(|| bad(format!("Validation error: {WHAT} must be an object")))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "is_public" | "allowed_cidrs"))
    {
        return Err(bad(format!(
            "Validation error: {WHAT} has an unknown key '{}' (allowed: is_public, allowed_cidrs)",
            printable(k)
        )));
    }
    let is_public = match obj.get("is_public") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad(format!(
                "Validation error: {WHAT}['is_public'] must be true or false"
            )));
        }
    };
    let listed = match obj.get("allowed_cidrs") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => {
            return Err(bad(format!(
                "Validation error: {WHAT}['allowed_cidrs'] must be a list"
            )));
        }
    };
    if listed.len() > MAX_ALLOWED_CIDRS {
        return Err(bad(format!(
            "Validation error: {WHAT}['allowed_cidrs'] has {} entries; at most {MAX_ALLOWED_CIDRS} are allowed",
            listed.len()
        )));
    }
    let mut allowed_cidrs = Vec::with_capacity(listed.len());
    let mut seen = std::collections::HashSet::with_capacity(listed.len());
    for (i, entry) in listed.iter().enumerate() {
        let text = entry.as_str().ok_or_else(|| {
            bad(format!(
                "Validation error: {WHAT}['allowed_cidrs'][{i}] must be a string"
            ))
        })?;
        let cidr: Cidr = text.parse().map_err(|e| {
            bad(format!(
                "Validation error: {WHAT}['allowed_cidrs'][{i}] '{}' {e}",
                printable(text)
            ))
        })?;
        if !seen.insert(cidr) {
            return Err(bad(format!(
                "Validation error: {WHAT}['allowed_cidrs'][{i}] repeats {cidr}"
            )));
        }
        allowed_cidrs.push(cidr);
    }
    Ok(Access {
        is_public,
        allowed_cidrs,
    })
}

/// A client string as it may appear in an error message: at most 64 characters, control
/// characters escaped, so an answer never echoes a huge or terminal-hostile value.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// PostgreSQL identifiers tenants may create: plain names, no reserved ones.
pub fn pg_identifier(name: &str, what: &str) -> Result<(), ApiError> {
    let ok_chars = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '-'))
    });
    if name.is_empty() || name.len() > 63 || !ok_chars {
        return Err(bad(format!(
            "Validation error: {what} '{name}' must be 1-63 characters of letters, digits, '_' or '-', starting with a letter or '_'"
        )));
    }
    let reserved = ["postgres", "template0", "template1", "root", "public"];
    if reserved.contains(&name.to_ascii_lowercase().as_str()) || name.starts_with("pg_") {
        return Err(bad(format!(
            "Validation error: {what} '{name}' is reserved"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid_ref_accepts_bare_and_href() {
        let id = Uuid::new_v4();
        assert_eq!(uuid_ref(&json!(id.to_string()), "x").ok(), Some(id));
        assert_eq!(
            uuid_ref(&json!(format!("http://h/v1.0/t/backups/{id}")), "x").ok(),
            Some(id)
        );
        assert!(uuid_ref(&json!("nope"), "x").is_err());
        assert!(uuid_strict(&json!(format!("http://h/{id}")), "x").is_err());
    }

    #[test]
    fn names_and_sizes() {
        assert!(non_empty_name(Some(&json!("pg1")), "name").is_ok());
        assert!(non_empty_name(Some(&json!("--")), "name").is_err());
        assert!(non_empty_name(Some(&json!(3)), "name").is_err());
        assert_eq!(volume_size(Some(&json!({"size": "2"}))).ok(), Some(Some(2)));
        assert!(volume_size(Some(&json!({"size": 0}))).is_err());
        assert_eq!(flavor_ref(Some(&json!(2))).ok().as_deref(), Some("2"));
        assert_eq!(
            flavor_ref(Some(&json!("http://h/flavors/7")))
                .ok()
                .as_deref(),
            Some("7")
        );
    }

    #[test]
    fn access_is_normalized_and_every_refusal_names_the_entry() {
        let a = access(&json!({"is_public": true, "allowed_cidrs": ["10.1.2.3/8", "::1"]}))
            .expect("valid");
        assert!(a.is_public);
        assert_eq!(
            serde_json::to_value(&a).expect("serializes"),
            json!({"is_public": true, "allowed_cidrs": ["10.0.0.0/8", "::1/128"]})
        );
        let defaults = access(&json!({})).expect("valid");
        assert!(!defaults.is_public && defaults.allowed_cidrs.is_empty());
        let message = |v: Value| match access(&v) {
            Err(e) => e.to_string(),
            Ok(a) => format!("accepted {a:?}"),
        };
        assert_eq!(
            message(json!({"allowed_cidrs": ["10.0.0.0/8", "10.0.0.1/8"]})),
            "Validation error: instance['access']['allowed_cidrs'][1] repeats 10.0.0.0/8"
        );
        assert_eq!(
            message(json!({"allowed_cidrs": ["10.0.0.0/8\nhost all all 0.0.0.0/0 trust"]})),
            "Validation error: instance['access']['allowed_cidrs'][0] '10.0.0.0/8\\nhost all all 0.0.0.0/0 trust' has a prefix length that is not a number"
        );
        assert!(message(json!({"allowed_cidrs": [7]})).contains("[0] must be a string"));
        assert!(message(json!({"allowed_cidrs": "10.0.0.0/8"})).contains("must be a list"));
        assert!(message(json!({"is_public": "yes"})).contains("true or false"));
        assert!(
            message(json!({"is_public": true, "public": true})).contains("unknown key 'public'")
        );
        assert!(message(json!(["10.0.0.0/8"])).contains("must be an object"));
        let too_many: Vec<String> = (0..=MAX_ALLOWED_CIDRS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert!(message(json!({"allowed_cidrs": too_many})).contains("at most 100"));
        let long = "1".repeat(10_000);
        let m = message(json!({"allowed_cidrs": [long]}));
        assert!(m.len() < 200, "{m}");
    }

    #[test]
    fn identifiers() {
        assert!(pg_identifier("app_db", "db").is_ok());
        assert!(pg_identifier("x\"; DROP", "db").is_err());
        assert!(pg_identifier("postgres", "db").is_err());
        assert!(pg_identifier("1abc", "db").is_err());
    }
}
