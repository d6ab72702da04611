//! Trove's error envelope, and refusals that must answer in it and leave the control plane as
//! it was.

use std::fmt::Display;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::Stack;

/// The key Trove's clients look for in an error body of `status`.
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        409 => "conflict",
        415 => "badMediaType",
        413 => "overLimit",
        422 => "unprocessableEntity",
        501 => "notImplemented",
        other => panic!("no fault name known for {other}"),
    }
}

/// Asserts that an answer is `want`, with its code in the envelope; `what` names the request.
pub fn assert_fault(status: StatusCode, resp: &Value, want: StatusCode, what: impl Display) {
    assert_eq!(status, want, "{what} -> {resp}");
    assert_eq!(resp[fault_name(want)]["code"], want.as_u16(), "{resp}");
}

impl Stack {
    /// Posts `body` as tenant A's recover of `instance` and asserts the refusal: `want` in the
    /// envelope with a message, and no change to the instance's rows, its recoveries, backups,
    /// or the outbox. Returns the message.
    pub async fn assert_recover_refused(
        &self,
        instance: Uuid,
        body: Value,
        want: StatusCode,
    ) -> Result<String> {
        let before = self.snapshot(instance).await?;
        let path = format!("/instances/{instance}/recover");
        let (status, resp) = self.post_a(&path, body.clone()).await?;
        assert_fault(status, &resp, want, &body);
        let message = resp[fault_name(want)]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{resp}");
        assert_eq!(
            self.snapshot(instance).await?,
            before,
            "a refusal changed state"
        );
        Ok(message.to_string())
    }
}
