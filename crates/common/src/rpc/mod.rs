//! RPC contracts: the oslo.messaging envelope and one typed message set per topic.

pub mod conductor;
pub mod envelope;
pub mod guest;
pub mod taskmanager;

pub use envelope::{DecodeError, RequestContext, RpcMessage};

/// Queue and routing-key names (docs/architecture.md, "Message bus").
pub mod topics {
    pub const TASKMANAGER: &str = "taskmanager";
    pub const CONDUCTOR: &str = "trove-conductor";

    /// A guest's queue for one instance it hosts.
    pub fn guest(instance_id: uuid::Uuid) -> String {
        format!("guestagent.{instance_id}")
    }

    /// A guest host's provisioning queue.
    pub fn guest_host(host: &str) -> String {
        format!("guesthost.{host}")
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
