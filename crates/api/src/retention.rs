//! The retention policy as the API shows it (`retention` in the instance detail and the window)
//! and a tenant's per-instance override of it (`retention` in `PUT`/`PATCH` of an instance).

use serde_json::{Map, Value, json};
use trove_common::retention::{
    MAX_MIN_BACKUPS, MAX_WINDOW_SECS, Policy, min_backups_problem, window_problem,
};

use crate::{
    error::ApiResult,
    validate::{bad, printable},
};

const WHAT: &str = "instance['retention']";

/// What an update asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// `null`: back to the operator's default.
    Clear,
    /// An object: it replaces the instance's override; a key left out follows the default.
    Set {
        window_secs: Option<i64>,
        min_backups: Option<i32>,
    },
}

impl Update {
    /// The override columns to store.
    pub fn columns(self) -> (Option<i64>, Option<i32>) {
        match self {
            Self::Clear => (None, None),
            Self::Set {
                window_secs,
                min_backups,
            } => (window_secs, min_backups),
        }
    }
}

/// Reads `retention` of an update body: `null`, or an object with `window_secs` and/or
/// `min_backups`, integers within the policy's bounds. Anything else is a 400 naming the key.
pub fn parse_update(v: &Value) -> ApiResult<Update> {
    let obj = match v {
        Value::Null => return Ok(Update::Clear),
        Value::Object(o) => o,
        _ => {
            return Err(bad(format!(
                "Validation error: {WHAT} must be an object or null"
            )));
        }
    };
    let unknown: Vec<String> = obj
        .keys()
        .filter(|k| !matches!(k.as_str(), "window_secs" | "min_backups"))
        .map(|k| format!("'{}'", printable(k)))
        .collect();
    if !unknown.is_empty() {
        // A body may carry thousands of keys: name a few.
        let mut named = unknown
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if unknown.len() > 5 {
            named.push_str(", …");
        }
        return Err(bad(format!(
            "Validation error: {WHAT} has unknown keys {named} (allowed: window_secs, min_backups)"
        )));
    }
    if obj.is_empty() {
        return Err(bad(format!(
            "Validation error: {WHAT} needs 'window_secs' or 'min_backups' (or null for the default)"
        )));
    }
    let window_secs = integer(obj, "window_secs", MAX_WINDOW_SECS, |n| {
        window_problem(n).is_none()
    })?;
    let min_backups = integer(obj, "min_backups", MAX_MIN_BACKUPS.into(), |n| {
        i32::try_from(n).is_ok_and(|n| min_backups_problem(n).is_none())
    })?
    .map(|n| {
        i32::try_from(n).map_err(|_| {
            bad(format!(
                "Validation error: {WHAT}.min_backups is out of range"
            ))
        })
    })
    .transpose()?;
    Ok(Update::Set {
        window_secs,
        min_backups,
    })
}

/// The integer under `key`, if present; 400 unless it is one that `ok` accepts.
fn integer(
    obj: &Map<String, Value>,
    key: &str,
    max: i64,
    ok: impl Fn(i64) -> bool,
) -> ApiResult<Option<i64>> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let min = if key == "window_secs" { 1 } else { 0 };
    match v.as_i64().filter(|n| ok(*n)) {
        Some(n) => Ok(Some(n)),
        None => Err(bad(format!(
            "Validation error: {WHAT}['{key}'] must be an integer from {min} to {max}"
        ))),
    }
}

/// `{"window_secs", "min_backups", "source"}`: the policy in force for an instance whose
/// override columns hold `window_secs` and `min_backups`.
pub fn view(window_secs: Option<i64>, min_backups: Option<i32>, default: Policy) -> Value {
    let p = default.overridden(window_secs, min_backups);
    let source = if window_secs.is_some() || min_backups.is_some() {
        "instance"
    } else {
        "default"
    };
    json!({"window_secs": p.window_secs, "min_backups": p.min_backups, "source": source})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn message(v: Value) -> String {
        match parse_update(&v) {
            Err(ApiError::BadRequest(m)) => m,
            other => format!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn an_override_is_an_object_of_bounded_integers_or_null() {
        assert_eq!(parse_update(&Value::Null).ok(), Some(Update::Clear));
        assert_eq!(
            parse_update(&json!({"window_secs": 60, "min_backups": 0})).ok(),
            Some(Update::Set {
                window_secs: Some(60),
                min_backups: Some(0)
            })
        );
        assert_eq!(
            parse_update(&json!({"min_backups": 100})).ok(),
            Some(Update::Set {
                window_secs: None,
                min_backups: Some(100)
            })
        );
        assert_eq!(
            parse_update(&json!({"window_secs": MAX_WINDOW_SECS}))
                .map(Update::columns)
                .ok(),
            Some((Some(MAX_WINDOW_SECS), None))
        );
        for bad_window in [
            json!(0),
            json!(-1),
            json!(MAX_WINDOW_SECS + 1),
            json!("60"),
            json!(1.5),
            json!(null),
            json!(true),
            json!(1e300),
        ] {
            assert_eq!(
                message(json!({"window_secs": bad_window})),
                "Validation error: instance['retention']['window_secs'] must be an integer from 1 to 315360000"
            );
        }
        for bad_min in [json!(-1), json!(101), json!(4_294_967_297_i64), json!([1])] {
            assert_eq!(
                message(json!({"min_backups": bad_min})),
                "Validation error: instance['retention']['min_backups'] must be an integer from 0 to 100"
            );
        }
        assert_eq!(
            message(json!({"window_secs": 60, "days": 7, "x\ny": 1})),
            "Validation error: instance['retention'] has unknown keys 'days', 'x\\ny' (allowed: window_secs, min_backups)"
        );
        assert!(message(json!({})).contains("needs 'window_secs' or 'min_backups'"));
        assert_eq!(
            message(json!(7)),
            "Validation error: instance['retention'] must be an object or null"
        );
        let many: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), json!(1))).collect();
        assert!(message(Value::Object(many)).len() < 200);
    }

    #[test]
    fn the_view_says_where_the_policy_comes_from() {
        let d = Policy {
            window_secs: 600,
            min_backups: 2,
        };
        assert_eq!(
            view(None, None, d),
            json!({"window_secs": 600, "min_backups": 2, "source": "default"})
        );
        assert_eq!(
            view(Some(60), None, d),
            json!({"window_secs": 60, "min_backups": 2, "source": "instance"})
        );
    }
}
