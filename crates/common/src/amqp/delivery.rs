//! What a consumer knows about a delivery besides its body: the sender the broker vouches for,
//! and how many deliveries of it already failed. Both ride in properties and headers, trusted
//! only as far as the broker's `user_id` check allows.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};

use crate::rpc::RpcMessage;

/// Failed deliveries so far, set when this process puts a failed message back in its queue.
pub(super) const ATTEMPTS_HEADER: &str = "x-trove-attempts";
/// The original sender of a message this process put back (its own `user_id` replaces the
/// original on the copy); empty when the original carried none.
pub(super) const SENDER_HEADER: &str = "x-trove-sender";

/// A decoded message and the broker user that published it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub message: RpcMessage,
    /// The publisher's broker user as RabbitMQ validated it (`user_id`; the broker refuses a
    /// `user_id` other than the authenticated user). `None` when the publisher set none.
    pub sender: Option<String>,
}

/// The sender and attempt count of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub sender: Option<String>,
    /// Deliveries of this message that failed before this one.
    pub attempts: u32,
}

impl Meta {
    /// Reads a delivery's properties. Our headers are believed only on a message published by
    /// this process's own broker user: anyone else could write them, but nobody else can publish
    /// with our `user_id`.
    pub fn read(props: &BasicProperties, own_user: &str) -> Meta {
        let user_id = props.user_id().as_ref().map(|u| u.as_str().to_string());
        if user_id.as_deref() != Some(own_user) {
            return Meta {
                sender: user_id,
                attempts: 0,
            };
        }
        let headers = props.headers().as_ref();
        let attempts = headers
            .and_then(|h| h.inner().get(ATTEMPTS_HEADER))
            .and_then(as_u32)
            .unwrap_or(0);
        let sender = match headers.and_then(|h| h.inner().get(SENDER_HEADER)) {
            Some(v) => as_string(v).filter(|s| !s.is_empty()),
            None => user_id,
        };
        Meta { sender, attempts }
    }

    /// The properties of the copy put back after a failed delivery: the original's, counting
    /// this failure and keeping who really sent it.
    pub fn retry_properties(&self, original: &BasicProperties) -> BasicProperties {
        // Only field types RabbitMQ reads as the spec says: a 64-bit integer and a long string
        // (it takes the spec's short string tag for a 16-bit integer).
        let mut headers = FieldTable::default();
        headers.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(self.attempts.saturating_add(1))),
        );
        let sender = self.sender.clone().unwrap_or_default();
        headers.insert(
            SENDER_HEADER.into(),
            AMQPValue::LongString(sender.into_bytes().into()),
        );
        original.clone().with_headers(headers)
    }
}

fn as_u32(v: &AMQPValue) -> Option<u32> {
    let n: i64 = match v {
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u32::try_from(n).ok()
}

fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(user: Option<&str>, headers: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut p = BasicProperties::default();
        if let Some(u) = user {
            p = p.with_user_id(u.into());
        }
        if !headers.is_empty() {
            let mut t = FieldTable::default();
            for (k, v) in headers {
                t.insert((*k).into(), v.clone());
            }
            p = p.with_headers(t);
        }
        p
    }

    #[test]
    fn a_foreign_senders_headers_are_ignored() {
        let p = props(
            Some("trove-host-a"),
            &[
                (ATTEMPTS_HEADER, AMQPValue::LongUInt(99)),
                (SENDER_HEADER, AMQPValue::LongString("trove-host-b".into())),
            ],
        );
        let m = Meta::read(&p, "trove");
        assert_eq!(m.sender.as_deref(), Some("trove-host-a"));
        assert_eq!(m.attempts, 0);
    }

    #[test]
    fn a_message_without_user_id_has_no_sender() {
        let m = Meta::read(&props(None, &[]), "trove");
        assert_eq!(
            m,
            Meta {
                sender: None,
                attempts: 0
            }
        );
    }

    #[test]
    fn a_copy_we_put_back_keeps_its_sender_and_counts_the_failure() {
        let first = Meta::read(&props(Some("trove-host-a"), &[]), "trove");
        let copy = first
            .retry_properties(&BasicProperties::default())
            .with_user_id("trove".into());
        let second = Meta::read(&copy, "trove");
        assert_eq!(second.sender.as_deref(), Some("trove-host-a"));
        assert_eq!(second.attempts, 1);
        let third = Meta::read(
            &second.retry_properties(&copy).with_user_id("trove".into()),
            "trove",
        );
        assert_eq!(third.attempts, 2);
        assert_eq!(third.sender.as_deref(), Some("trove-host-a"));
    }

    #[test]
    fn a_copy_of_an_anonymous_message_stays_anonymous() {
        let first = Meta::read(&props(None, &[]), "trove");
        let copy = first
            .retry_properties(&BasicProperties::default())
            .with_user_id("trove".into());
        assert_eq!(Meta::read(&copy, "trove").sender, None);
    }

    #[test]
    fn our_own_messages_are_from_us() {
        let m = Meta::read(&props(Some("trove"), &[]), "trove");
        assert_eq!(m.sender.as_deref(), Some("trove"));
    }
}
