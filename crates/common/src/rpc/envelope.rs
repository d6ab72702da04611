//! oslo.messaging's rabbit wire format: `{"oslo.version": "2.0", "oslo.message": "<json string>"}`
//! with `method`, `args`, `version`, `_unique_id` and one `_context_<key>` per context entry.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Method;

/// The request context that travels with every message. Tokens never travel on the bus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub project_id: Option<String>,
    pub user: Option<String>,
    pub is_admin: bool,
    pub roles: Vec<String>,
    /// Ours: the guest host that sent a guest → conductor message.
    pub guest_host: Option<String>,
}

/// A decoded RPC request, before its method is matched.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcMessage {
    pub method: String,
    pub args: Value,
    pub version: String,
    pub unique_id: String,
    pub context: RequestContext,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("missing or non-string `oslo.message`")]
    NoMessage,
    #[error("`oslo.message` is not a JSON object: {0}")]
    BadInner(String),
    #[error("missing `method`")]
    NoMethod,
    #[error("method {method}: {source}")]
    BadArgs {
        method: String,
        source: serde_json::Error,
    },
}

impl RpcMessage {
    pub fn new<M: Method>(msg: &M, context: RequestContext) -> Self {
        let (method, args) = msg.to_parts();
        Self {
            method,
            args,
            version: M::VERSION.to_string(),
            unique_id: uuid::Uuid::new_v4().simple().to_string(),
            context,
        }
    }

    /// The AMQP body.
    pub fn encode(&self) -> Vec<u8> {
        let mut inner = Map::new();
        inner.insert("method".into(), json!(self.method));
        inner.insert("args".into(), self.args.clone());
        inner.insert("version".into(), json!(self.version));
        inner.insert("_unique_id".into(), json!(self.unique_id));
        let ctx = serde_json::to_value(&self.context).expect("context serializes");
        if let Value::Object(ctx) = ctx {
            for (k, v) in ctx {
                inner.insert(format!("_context_{k}"), v);
            }
        }
        let outer = json!({
            "oslo.version": "2.0",
            "oslo.message": Value::Object(inner).to_string(),
        });
        outer.to_string().into_bytes()
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let outer: Value = serde_json::from_slice(body).map_err(DecodeError::NotJson)?;
        let inner_text = outer
            .get("oslo.message")
            .and_then(Value::as_str)
            .ok_or(DecodeError::NoMessage)?;
        let inner: Value =
            serde_json::from_str(inner_text).map_err(|e| DecodeError::BadInner(e.to_string()))?;
        let Value::Object(inner) = inner else {
            return Err(DecodeError::BadInner("not an object".into()));
        };
        let method = inner
            .get("method")
            .and_then(Value::as_str)
            .ok_or(DecodeError::NoMethod)?
            .to_string();
        let mut ctx = Map::new();
        for (k, v) in &inner {
            if let Some(key) = k.strip_prefix("_context_") {
                ctx.insert(key.to_string(), v.clone());
            }
        }
        // Unknown or ill-typed context keys (Trove sends many) must not reject the message.
        let context = RequestContext {
            request_id: str_of(&ctx, "request_id"),
            project_id: str_of(&ctx, "project_id"),
            user: str_of(&ctx, "user"),
            is_admin: ctx
                .get("is_admin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            roles: ctx
                .get("roles")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            guest_host: str_of(&ctx, "guest_host"),
        };
        Ok(Self {
            method,
            args: inner.get("args").cloned().unwrap_or_else(|| json!({})),
            // oslo: a missing version means 1.0.
            version: inner
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("1.0")
                .to_string(),
            unique_id: inner
                .get("_unique_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            context,
        })
    }

    /// Matches the method against a topic's message set.
    pub fn parse<M: Method>(&self) -> Result<M, DecodeError> {
        M::from_parts(&self.method, &self.args).map_err(|source| DecodeError::BadArgs {
            method: self.method.clone(),
            source,
        })
    }
}

fn str_of(ctx: &Map<String, Value>, key: &str) -> Option<String> {
    ctx.get(key).and_then(Value::as_str).map(str::to_string)
}
