//! RPC contracts: the oslo.messaging envelope and one typed message set per topic.

pub mod conductor;
pub mod envelope;
pub mod guest;
pub mod taskmanager;

pub use envelope::{DecodeError, RequestContext, RpcMessage};

/// Queue and routing-key names (docs/architecture.md, "Message bus").
pub mod topics {
    use uuid::Uuid;

    pub const TASKMANAGER: &str = "taskmanager";
    pub const CONDUCTOR: &str = "trove-conductor";

    /// Trove's routing key for everything cast to one instance's guest.
    pub fn guest(instance_id: Uuid) -> String {
        format!("guestagent.{instance_id}")
    }

    /// A guest host's provisioning queue (also its routing key).
    pub fn guest_host(host: &str) -> String {
        format!("guesthost.{host}")
    }

    /// The queue that receives [`guest`]`(instance_id)` on the host running the instance. It is
    /// named after the host so one pattern ([`host_queue_pattern`]) allows a host's broker user
    /// exactly its own queues; the taskmanager declares and binds it when it places the
    /// instance, so a host never binds anything itself.
    pub fn guest_instance_queue(host: &str, instance_id: Uuid) -> String {
        format!("guesthost.{host}.{instance_id}")
    }

    /// Whether a publisher declares a queue named like the topic before publishing to it.
    /// Instance topics are not: their queue is named after the host ([`guest_instance_queue`]).
    pub fn declared_on_publish(topic: &str) -> bool {
        !topic.starts_with("guestagent.")
    }

    /// The broker permission pattern (an anchored regex) matching `host`'s queues and no other:
    /// `guesthost.<host>` and `guesthost.<host>.<instance uuid>`.
    pub fn host_queue_pattern(host: &str) -> String {
        format!(
            "^guesthost\\.{}(\\.[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}})?$",
            regex_escape(host)
        )
    }

    /// Escapes `s` for use as a literal inside a broker permission regex.
    pub fn regex_escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if "\\.^$|?*+()[]{}".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// Checks a guest host id: 1 to 64 characters of letters, digits, `.`, `_` and `-`,
    /// starting with a letter or digit, and no dot-separated part that is a UUID. So every
    /// queue name says which host owns it, and [`host_queue_pattern`] of one host can never
    /// match another host's queue.
    pub fn check_host_id(host: &str) -> Result<(), String> {
        let ok_chars = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let starts_ok = host
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if host.is_empty() || host.len() > 64 || !ok_chars || !starts_ok {
            return Err(format!(
                "host id '{}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                host.escape_default()
            ));
        }
        if host.split('.').any(|part| Uuid::try_parse(part).is_ok()) {
            return Err(format!(
                "host id '{host}' must not contain a UUID between dots (instance queues are named <host>.<uuid>)"
            ));
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn host_ids_that_could_be_confused_with_instance_queues_are_refused() {
            assert!(check_host_id("db-host-1").is_ok());
            assert!(check_host_id("db1.example.com").is_ok());
            assert!(check_host_id("").is_err());
            assert!(check_host_id("-x").is_err());
            assert!(check_host_id("a b").is_err());
            assert!(check_host_id("a\u{0}b").is_err());
            assert!(check_host_id(&"a".repeat(65)).is_err());
            let u = Uuid::new_v4();
            assert!(check_host_id(&format!("a.{u}")).is_err());
            assert!(check_host_id(&u.to_string()).is_err());
        }

        #[test]
        fn the_pattern_escapes_the_host_id() {
            assert_eq!(regex_escape("db1.example-2"), "db1\\.example-2");
            assert!(host_queue_pattern("a.b").starts_with("^guesthost\\.a\\.b("));
        }
    }
}

/// A typed message set for one topic: knows its wire method names.
pub trait Method: serde::Serialize + serde::de::DeserializeOwned {
    /// RPC API version the sender stamps (Trove: taskmanager/conductor 1.0, guest up to 1.3).
    const VERSION: &'static str;

    /// Splits into (method, args) for the envelope.
    fn to_parts(&self) -> (String, serde_json::Value) {
        let v = serde_json::to_value(self).expect("rpc messages serialize to JSON objects");
        let method = v
            .get("method")
            .and_then(|m| m.as_str())
            .expect("rpc enums are tagged with `method`")
            .to_string();
        let args = v
            .get("args")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        (method, args)
    }

    /// Rebuilds from (method, args); unknown methods and bad args are errors, never panics.
    fn from_parts(method: &str, args: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"method": method, "args": args}))
    }
}
