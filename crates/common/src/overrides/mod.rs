//! Configuration groups' contract: the parameters a tenant may set on a PostgreSQL instance (the
//! rule set shipped as data beside this file), how a value is checked against its rule, and how
//! a checked value is written into a PostgreSQL configuration file. trove-api checks what a
//! client sends; the guest agent checks again before it writes anything, because a file it
//! writes is read by a server running as `postgres`.

pub mod memory;

use std::{collections::BTreeMap, fmt, sync::OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a configuration group holds and the wire carries: parameter name → JSON value, as
/// Trove's `values` and `overrides`.
pub type Overrides = BTreeMap<String, Value>;

/// Longest string value accepted: PostgreSQL's own string settings are short; a megabyte of
/// text in a configuration file is an attack, not a setting.
pub const MAX_STRING_LEN: usize = 1024;

/// Trove's rule types, plus `float` for PostgreSQL's real settings (Trove types them as
/// integer or string, which refuses `0.5` or accepts anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Boolean,
    Integer,
    Float,
    String,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::String => "string",
        }
    }
}

/// One parameter a configuration group may set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub restart_required: bool,
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// PostgreSQL's unit for the setting (`kB`, `8kB`, `ms`, …): a string value may then be a
    /// number with a unit, and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The values PostgreSQL accepts for an enumerated setting (compared case-insensitively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
}

/// A value that passed its rule, in the form PostgreSQL's configuration file takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Checked {
    /// The value as it appears right of `=` in postgresql.conf. Strings are single-quoted with
    /// `'` doubled and `\` escaped (the file's parser reads backslash escapes), and they hold no
    /// control characters, so no value can end its line or its quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => f.write_str(if *b { "on" } else { "off" }),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        }
    }
}

/// Why a value was refused; the text names the parameter, for the 400 the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

#[derive(Deserialize)]
struct RuleFile {
    #[serde(rename = "configuration-parameters")]
    parameters: Vec<Rule>,
}

/// The parameters of one datastore version, by lowercase name.
#[derive(Debug)]
pub struct RuleSet {
    rules: BTreeMap<String, Rule>,
}

const POSTGRESQL_15: &str = include_str!("postgresql-15.json");

/// The PostgreSQL rule set: every managed instance runs PostgreSQL 15's server binaries.
pub fn postgresql() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let file: RuleFile =
            serde_json::from_str(POSTGRESQL_15).expect("the shipped rule set is valid JSON");
        RuleSet {
            rules: file
                .parameters
                .into_iter()
                .map(|r| (r.name.to_ascii_lowercase(), r))
                .collect(),
        }
    })
}

/// The rule set for a datastore manager, if configuration groups are supported for it.
pub fn for_manager(manager: &str) -> Option<&'static RuleSet> {
    (manager == "postgresql").then(postgresql)
}

impl RuleSet {
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.get(&name.to_ascii_lowercase())
    }

    /// Checks one value against its rule.
    pub fn check(&self, name: &str, value: &Value) -> Result<Checked, Refused> {
        let shown = printable(name);
        let rule = self.get(name).ok_or_else(|| {
            Refused(format!(
                "The configuration parameter {shown} is not supported for this datastore: postgresql."
            ))
        })?;
        let wrong_type = || {
            Refused(format!(
                "The value provided for the configuration parameter {shown} is not of type {}.",
                rule.kind.as_str()
            ))
        };
        let checked = match (rule.kind, value) {
            (ParamType::Boolean, Value::Bool(b)) => Checked::Bool(*b),
            (ParamType::Integer, Value::Number(n)) => {
                Checked::Int(n.as_i64().ok_or_else(wrong_type)?)
            }
            (ParamType::Float, Value::Number(n)) => Checked::Float(
                n.as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(wrong_type)?,
            ),
            (ParamType::String, Value::String(s)) => Checked::Text(check_text(rule, &shown, s)?),
            _ => return Err(wrong_type()),
        };
        let number = match checked {
            Checked::Int(i) => Some(i as f64),
            Checked::Float(x) => Some(x),
            _ => None,
        };
        if let Some(x) = number {
            if let Some(min) = rule.min.filter(|min| x < *min) {
                return Err(Refused(format!(
                    "The value for the configuration parameter {shown} is less than the minimum allowed: {min}"
                )));
            }
            if let Some(max) = rule.max.filter(|max| x > *max) {
                return Err(Refused(format!(
                    "The value for the configuration parameter {shown} is greater than the maximum allowed: {max}"
                )));
            }
        }
        Ok(checked)
    }

    /// Checks every value; the result is keyed by lowercase name, so `Work_Mem` and `work_mem`
    /// cannot both reach the file.
    pub fn check_all(&self, values: &Overrides) -> Result<BTreeMap<String, Checked>, Refused> {
        let mut out = BTreeMap::new();
        for (name, value) in values {
            let checked = self.check(name, value)?;
            if out.insert(name.to_ascii_lowercase(), checked).is_some() {
                return Err(Refused(format!(
                    "The configuration parameter {} is given twice.",
                    printable(name)
                )));
            }
        }
        Ok(out)
    }

    /// Whether changing `name` takes a restart to take effect.
    pub fn restart_required(&self, name: &str) -> bool {
        self.get(name).is_some_and(|r| r.restart_required)
    }
}

fn check_text(rule: &Rule, shown: &str, s: &str) -> Result<String, Refused> {
    if s.len() > MAX_STRING_LEN || s.chars().any(char::is_control) {
        return Err(Refused(format!(
            "The value for the configuration parameter {shown} must be at most {MAX_STRING_LEN} characters without control characters."
        )));
    }
    if let Some(allowed) = &rule.allowed_values
        && !allowed.iter().any(|a| a.eq_ignore_ascii_case(s))
    {
        return Err(Refused(format!(
            "The value for the configuration parameter {shown} must be one of: {}.",
            allowed.join(", ")
        )));
    }
    if let Some(unit) = &rule.unit {
        let Some(amount) = in_base_units(s, unit) else {
            return Err(Refused(format!(
                "The value for the configuration parameter {shown} must be a number with an optional unit (e.g. 64{}).",
                display_unit(unit)
            )));
        };
        // PostgreSQL's own bounds, in the setting's unit.
        if rule.min.is_some_and(|min| amount < min) || rule.max.is_some_and(|max| amount > max) {
            return Err(Refused(format!(
                "The value for the configuration parameter {shown} is outside the range PostgreSQL allows ({} to {} {unit}).",
                rule.min.unwrap_or(f64::MIN),
                rule.max.unwrap_or(f64::MAX)
            )));
        }
    }
    Ok(s.to_owned())
}

/// Bytes or microseconds in one of PostgreSQL's units, and whether it is a memory unit.
fn unit_size(unit: &str) -> Option<(f64, bool)> {
    Some(match unit {
        "B" => (1.0, true),
        "kB" => (1024.0, true),
        "8kB" => (8192.0, true),
        "MB" => (1024.0 * 1024.0, true),
        "GB" => (1024.0 * 1024.0 * 1024.0, true),
        "TB" => (1024.0 * 1024.0 * 1024.0 * 1024.0, true),
        "us" => (1.0, false),
        "ms" => (1e3, false),
        "s" => (1e6, false),
        "min" => (60e6, false),
        "h" => (3600e6, false),
        "d" => (86400e6, false),
        _ => return None,
    })
}

/// A number with an optional PostgreSQL unit of the same kind as `base` (`128MB`, `30s`,
/// `250 ms`, `-1`), in units of `base`; a bare number is already in them.
fn in_base_units(s: &str, base: &str) -> Option<f64> {
    let s = s.trim();
    let digits_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && *c == '-')))
        .map_or(s.len(), |(i, _)| i);
    let (number, unit) = s.split_at(digits_end);
    let number: f64 = number.parse().ok().filter(|n: &f64| n.is_finite())?;
    let unit = unit.trim();
    if unit.is_empty() {
        return Some(number);
    }
    let (size, memory) = unit_size(unit)?;
    let (base_size, base_memory) = unit_size(base)?;
    (memory == base_memory).then_some(number * size / base_size)
}

fn display_unit(unit: &str) -> &str {
    match unit {
        "8kB" | "kB" => "MB",
        other => other,
    }
}

/// A client's parameter name as it may appear in a message: at most 64 plain characters.
fn printable(name: &str) -> String {
    let clean: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!("'{clean}'")
}

/// The overrides file: one `name = value` line per checked value, names from the rule set only.
pub fn render(checked: &BTreeMap<String, Checked>) -> String {
    let mut out = String::from(
        "# Managed by the Trove guest agent: the instance's configuration group.\n\
         # Rewritten whenever the group changes; every name and value was checked against the\n\
         # datastore's rule set.\n",
    );
    for (name, value) in checked {
        out.push_str(&format!("{name} = {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_shipped_rules_load_and_know_restart_required() {
        let rules = postgresql();
        assert!(rules.restart_required("max_connections"));
        assert!(rules.restart_required("shared_buffers"));
        assert!(!rules.restart_required("work_mem"));
        assert!(
            rules.get("archive_command").is_none(),
            "pinned by the agent"
        );
        assert!(
            rules.get("log_min_messages").is_none(),
            "debug levels log statement text"
        );
        assert!(
            rules.get("checkpoint_segments").is_none(),
            "gone in PostgreSQL 15"
        );
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        let r = postgresql();
        assert_eq!(r.check("max_connections", &json!(80)), Ok(Checked::Int(80)));
        assert!(r.check("max_connections", &json!(0)).is_err());
        assert!(r.check("max_connections", &json!("80")).is_err());
        assert!(r.check("autovacuum", &json!(1)).is_err());
        assert_eq!(
            r.check("autovacuum", &json!(false)),
            Ok(Checked::Bool(false))
        );
        assert!(r.check("work_mem", &json!("8MB")).is_ok());
        assert!(r.check("work_mem", &json!("lots")).is_err());
        assert!(
            r.check("work_mem", &json!("8s")).is_err(),
            "a time for a size"
        );
        assert!(r.check("work_mem", &json!("32kB")).is_err(), "below 64kB");
        assert!(
            r.check("shared_buffers", &json!("16TB")).is_err(),
            "above 8TB"
        );
        assert!(
            r.check("shared_buffers", &json!("128")).is_ok(),
            "8kB pages"
        );
        assert!(r.check("deadlock_timeout", &json!("1.5min")).is_ok());
        assert!(r.check("no_such_thing", &json!(1)).is_err());
        let e = r
            .check("bytea_output", &json!("base64"))
            .expect_err("not one of its values");
        assert!(e.0.contains("'bytea_output'"), "{e}");
    }

    #[test]
    fn strings_cannot_break_out_of_their_line() {
        let r = postgresql();
        assert!(
            r.check("search_path", &json!("x'\narchive_command = 'sh"))
                .is_err()
        );
        let v = r
            .check("search_path", &json!(r"a\', b"))
            .expect("a plain string");
        assert_eq!(v.to_string(), r"'a\\'', b'");
        let text = render(&BTreeMap::from([("search_path".to_owned(), v)]));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1);
    }

    #[test]
    fn names_are_case_insensitive_but_unique() {
        let r = postgresql();
        let both = Overrides::from([
            ("work_mem".to_owned(), json!("4MB")),
            ("Work_Mem".to_owned(), json!("8MB")),
        ]);
        assert!(r.check_all(&both).is_err());
    }
}
