//! Pure request validation: turns untrusted JSON into domain values or a 400 message.

use std::collections::HashSet;

use serde_json::{Map, Value};
use trove_common::access::{Access, Cidr};
use uuid::Uuid;

use crate::{error::ApiError, limits};

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

/// Refuses control characters (NUL included: PostgreSQL cannot store it in text) and strings
/// longer than `max` characters. The value is never echoed: it may be a password, or huge.
pub fn text(s: &str, what: &str, max: usize) -> Result<(), ApiError> {
    if s.chars().any(char::is_control) {
        return Err(bad(format!(
            "Validation error: {what} must not contain control characters"
        )));
    }
    if s.chars().nth(max).is_some() {
        return Err(bad(format!(
            "Validation error: {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// A string under `what`, checked by [`text`].
pub fn string<'a>(v: &'a Value, what: &str, max: usize) -> Result<&'a str, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("Validation error: {what} must be a string")))?;
    text(s, what, max)?;
    Ok(s)
}

/// A non-negative integer written with ASCII digits only (no sign, blanks or exponent), as query
/// values are; `None` when it is not one or does not fit an i64.
pub fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An optional string: absent and null are `None`.
pub fn optional_string(
    v: Option<&Value>,
    what: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(v, what, max).map(|s| Some(s.to_string())),
    }
}

/// Trove's `non_empty_string`: 1–255 characters with at least one letter or digit.
pub fn non_empty_name(v: Option<&Value>, what: &str) -> Result<String, ApiError> {
    let v = v.ok_or_else(|| bad(format!("Validation error: {what} is a required property")))?;
    let s = string(v, what, limits::NAME_CHARS)?;
    if !s.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err(bad(format!(
            "Validation error: {what} '{s}' must be 1-{} characters with at least one letter or digit",
            limits::NAME_CHARS
        )));
    }
    Ok(s.to_string())
}

/// The list under `key` of `obj`, at most `max` long; absent is empty.
pub fn list<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
    max: usize,
) -> Result<&'a [Value], ApiError> {
    let Some(v) = obj.get(key) else {
        return Ok(&[]);
    };
    let items = v
        .as_array()
        .ok_or_else(|| bad(format!("Validation error: {what} must be a list")))?;
    if items.len() > max {
        return Err(bad(format!(
            "Validation error: {what} has {} items; at most {max} are allowed",
            items.len()
        )));
    }
    Ok(items)
}

/// A bare UUID, or an href whose last path segment is one.
pub fn uuid_ref(v: &Value, what: &str) -> Result<Uuid, ApiError> {
    let s = uuid_string(v, what)?;
    let last = s.trim_end_matches('/').rsplit('/').next().unwrap_or(s);
    Uuid::parse_str(last).map_err(|_| {
        bad(format!(
            "Validation error: {what} '{s}' is not a valid UUID"
        ))
    })
}

/// A bare UUID only.
pub fn uuid_strict(v: &Value, what: &str) -> Result<Uuid, ApiError> {
    let s = uuid_string(v, what)?;
    Uuid::parse_str(s).map_err(|_| {
        bad(format!(
            "Validation error: {what} '{s}' is not a valid UUID"
        ))
    })
}

fn uuid_string<'a>(v: &'a Value, what: &str) -> Result<&'a str, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("Validation error: {what} must be a UUID string")))?;
    text(s, what, limits::REF_CHARS)?;
    Ok(s)
}

/// A flavor reference: a string, an integer or an href.
pub fn flavor_ref(v: Option<&Value>) -> Result<String, ApiError> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            text(s, "instance['flavorRef']", limits::REF_CHARS)?;
            Ok(s.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(s)
                .to_string())
        }
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(bad(
            "Validation error: instance['flavorRef'] is not a valid flavor reference: send a flavor id, name or href",
        )),
        None => Err(bad(
            "Validation error: instance 'flavorRef' is a required property",
        )),
    }
}

/// `volume.size`: an integer ≥ 1 or a numeric string.
pub fn volume_size(v: Option<&Value>) -> Result<Option<i32>, ApiError> {
    let vol = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(bad(
                "Validation error: instance['volume'] must be an object",
            ));
        }
    };
    let Some(size) = vol.get("size") else {
        return Err(bad(
            "Validation error: instance['volume'] 'size' is a required property",
        ));
    };
    let n = match size {
        Value::Number(n) => n.as_i64(),
        // Trove's `^0*[1-9]+[0-9]*$`: digits only, no sign or blanks; ten of them hold any i32.
        Value::String(s)
            if (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<i64>().ok()
        }
        _ => None,
    };
    match n {
        Some(n) if (1..=i32::MAX as i64).contains(&n) => Ok(Some(n as i32)),
        _ => Err(bad(
            "Validation error: instance['volume']['size'] is not a positive integer",
        )),
    }
}

/// A client string as it may appear in an error message: at most 64 characters, control
/// characters escaped, so an answer never echoes a huge or terminal-hostile value.
pub fn printable(s: &str) -> String {
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
    if name.is_empty() || name.len() > limits::PG_IDENTIFIER_BYTES || !ok_chars {
        return Err(bad(format!(
            "Validation error: {what} must be 1-{} characters of letters, digits, '_' or '-', starting with a letter or '_'",
            limits::PG_IDENTIFIER_BYTES
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

/// The `name` of a database or user entry, which must be a PostgreSQL identifier tenants may
/// create.
pub fn entry_name<'a>(entry: &'a Value, what: &str) -> Result<&'a str, ApiError> {
    let name = entry.get("name").and_then(Value::as_str).ok_or_else(|| {
        bad(format!(
            "Validation error: each {what} needs a 'name' string"
        ))
    })?;
    pg_identifier(name, &format!("{what} name"))?;
    Ok(name)
}

/// The names of a `databases` list (`[{"name": …}]`) of `obj`: at least one, at most `max`, each
/// a name tenants may create. A name given twice is refused when `refuse_twice`, else kept once.
pub fn database_names(
    obj: &Map<String, Value>,
    max: usize,
    refuse_twice: bool,
) -> Result<Vec<String>, ApiError> {
    let listed = list(obj, "databases", "databases", max)?;
    if listed.is_empty() {
        return Err(bad(
            "Validation error: 'databases' must list at least one database",
        ));
    }
    let mut seen = HashSet::with_capacity(listed.len());
    let mut names = Vec::with_capacity(listed.len());
    for d in listed {
        let name = entry_name(d, "database")?;
        if seen.insert(name) {
            names.push(name.to_string());
        } else if refuse_twice {
            return Err(bad(format!("Database '{name}' is listed twice.")));
        }
    }
    Ok(names)
}

/// `datastore`: optional, an object whose `type` and `version` are optional names or ids.
pub fn datastore(v: Option<&Value>) -> Result<(Option<String>, Option<String>), ApiError> {
    let ds = match v {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(bad(
                "Validation error: instance['datastore'] must be an object",
            ));
        }
    };
    let field = |k: &str| {
        optional_string(
            ds.get(k),
            &format!("instance['datastore']['{k}']"),
            limits::REF_CHARS,
        )
    };
    Ok((field("type")?, field("version")?))
}

/// A user's password: required, 8–128 characters, no control characters. Messages name the
/// user, never the password.
pub fn password(v: Option<&Value>, user: &str) -> Result<String, ApiError> {
    let what = format!("the password of user '{user}'");
    let v = v.ok_or_else(|| bad(format!("Validation error: {what} is a required property")))?;
    let p = string(v, &what, limits::PASSWORD_MAX_CHARS)?;
    if p.chars().nth(limits::PASSWORD_MIN_CHARS - 1).is_none() {
        return Err(bad(format!(
            "Validation error: {what} must be at least {} characters",
            limits::PASSWORD_MIN_CHARS
        )));
    }
    Ok(p.to_string())
}

/// Trove's `access {is_public, allowed_cidrs}` of a create or an update, the one place it is
/// checked. Absent or null is `None`. Otherwise an object: `is_public` a boolean (default
/// false), `allowed_cidrs` a list of at most [`limits::ALLOWED_CIDRS`] IPv4 or IPv6 CIDRs (a bare
/// address is one host). Other keys are dropped, as Trove's schema lets them pass, so nothing
/// else a client sends is stored. CIDRs come back normalized (`10.1.2.3/8` is `10.0.0.0/8`) and a
/// network listed twice (after that) is refused. Linear in the size of the list.
pub fn access(v: Option<&Value>) -> Result<Option<Access>, ApiError> {
    const WHAT: &str = "instance['access']";
    let obj = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(bad(format!("Validation error: {WHAT} must be an object")));
        }
    };
    let is_public = match obj.get("is_public") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad(format!(
                "Validation error: {WHAT}['is_public'] must be a boolean"
            )));
        }
    };
    let what = format!("{WHAT}['allowed_cidrs']");
    let listed = list(obj, "allowed_cidrs", &what, limits::ALLOWED_CIDRS)?;
    let mut allowed_cidrs = Vec::with_capacity(listed.len());
    let mut seen = HashSet::with_capacity(listed.len());
    for (i, entry) in listed.iter().enumerate() {
        let entry_what = format!("{what}[{i}]");
        let text = string(entry, &entry_what, limits::REF_CHARS)?;
        let cidr: Cidr = text.parse().map_err(|e| {
            bad(format!(
                "Validation error: {entry_what} '{}' {e}",
                printable(text)
            ))
        })?;
        if !seen.insert(cidr) {
            return Err(bad(format!(
                "Validation error: {entry_what} repeats {cidr}"
            )));
        }
        allowed_cidrs.push(cidr);
    }
    Ok(Some(Access {
        is_public,
        allowed_cidrs,
    }))
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
    fn text_refuses_control_characters_and_overlong_strings() {
        assert!(text("a b", "x", 3).is_ok());
        assert!(text("ä€😀", "x", 3).is_ok());
        assert!(text("abcd", "x", 3).is_err());
        for c in ['\0', '\n', '\t', '\u{7f}', '\u{85}'] {
            let e = text(&format!("a{c}b"), "instance 'name'", 255);
            assert!(
                matches!(&e, Err(ApiError::BadRequest(m)) if m.contains("instance 'name'") && !m.contains(c)),
                "{c:?}: {e:?}"
            );
        }
    }

    #[test]
    fn lists_are_capped() {
        let obj = json!({"databases": vec![json!({"name": "d"}); 3]});
        let obj = obj.as_object().expect("object");
        assert_eq!(
            list(obj, "databases", "d", 3).map(<[Value]>::len).ok(),
            Some(3)
        );
        assert!(list(obj, "databases", "d", 2).is_err());
        assert_eq!(list(obj, "users", "u", 2).map(<[Value]>::len).ok(), Some(0));
    }

    #[test]
    fn passwords_have_a_length_window_and_are_never_echoed() {
        assert!(password(Some(&json!("12345678")), "u").is_ok());
        for p in ["1234567", &"p".repeat(129), "secret\u{0}12"] {
            let e = password(Some(&json!(p)), "u");
            assert!(
                matches!(&e, Err(ApiError::BadRequest(m)) if m.contains("user 'u'") && !m.contains(p)),
                "{e:?}"
            );
        }
        assert!(password(None, "u").is_err());
        assert!(password(Some(&json!(12345678)), "u").is_err());
    }

    #[test]
    fn access_is_normalized_keeps_known_keys_and_every_refusal_names_the_entry() {
        let a = access(Some(&json!({
            "is_public": true, "allowed_cidrs": ["10.1.2.3/8", "::1"], "x": 1
        })))
        .expect("valid")
        .expect("present");
        assert_eq!(
            serde_json::to_value(&a).expect("serializes"),
            json!({"is_public": true, "allowed_cidrs": ["10.0.0.0/8", "::1/128"]})
        );
        assert_eq!(access(None).ok(), Some(None));
        assert_eq!(access(Some(&Value::Null)).ok(), Some(None));
        let defaults = access(Some(&json!({}))).expect("valid").expect("present");
        assert!(!defaults.is_public && defaults.allowed_cidrs.is_empty());
        let message = |v: Value| match access(Some(&v)) {
            Err(e) => e.to_string(),
            Ok(a) => format!("accepted {a:?}"),
        };
        assert_eq!(
            message(json!({"allowed_cidrs": ["10.0.0.0/8", "10.0.0.1/8"]})),
            "Validation error: instance['access']['allowed_cidrs'][1] repeats 10.0.0.0/8"
        );
        assert_eq!(
            message(json!({"allowed_cidrs": ["10.0.0.0/8 trust"]})),
            "Validation error: instance['access']['allowed_cidrs'][0] '10.0.0.0/8 trust' has a prefix length that is not a number"
        );
        let newline =
            message(json!({"allowed_cidrs": ["10.0.0.0/8\nhost all all 0.0.0.0/0 trust"]}));
        assert!(
            newline.contains("must not contain control characters"),
            "{newline}"
        );
        assert!(message(json!({"allowed_cidrs": [7]})).contains("[0] must be a string"));
        for bad_access in [
            json!("x"),
            json!(["10.0.0.0/8"]),
            json!({"is_public": "yes"}),
            json!({"allowed_cidrs": "10.0.0.0/8"}),
            json!({"allowed_cidrs": null}),
            json!({"allowed_cidrs": ["10.0.0.0/"]}),
            json!({"allowed_cidrs": ["10.0.0.0/33"]}),
            json!({"allowed_cidrs": ["10.0.0.0/+8"]}),
            json!({"allowed_cidrs": ["10.0.0.0/8", "10.0.0.0/8"]}),
            json!({"allowed_cidrs": vec![json!("10.0.0.0/8"); 101]}),
        ] {
            assert!(access(Some(&bad_access)).is_err(), "{bad_access}");
        }
        let m = message(json!({"allowed_cidrs": ["1".repeat(200)]}));
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
