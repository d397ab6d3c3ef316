//! Delivery policies: what happens to an outbound frame when its recipient is behind.
//!
//! Every frame is queued for its recipient and written in order. What differs is the case where the
//! recipient's send queue (`ws_core::config`) already holds frames it has not read yet:
//!
//! | policy | declared with | when the recipient is behind |
//! |---|---|---|
//! | reliable (default) | nothing | queued; counts against the queue's bounds, past which the client is dropped |
//! | volatile | `#[ws(volatile)]` | skipped when the queue holds more than `send_queue_volatile_bytes` |
//! | latest value wins | `#[ws(latest)]`, `#[ws(latest = "field")]` | replaces, in place, a queued frame of the same type (and the same value of `field`) that is still waiting |
//!
//! A replaced frame keeps its place in the queue, so a lagging client receives the newest value at the
//! position of the oldest unsent one instead of a backlog of stale ones; frames of other types keep their
//! order around it. Volatile frames are for what is worthless late (typing indicators, "someone is here"
//! pings); latest-value frames for state that only matters as of now (cursors, progress, prices).
//!
//! The policy travels with the server's frame (`ws_core::protocol::Frame`): a broadcast serializes the message and its key once,
//! and every recipient's queue applies the policy to its own backlog, without an allocation per recipient.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// A variant's declared delivery policy, as `#[ws_messages(outbound)]` records it on [`Variant`](crate::message::Variant).
///
/// ```
/// use ws_protocol::delivery::DeliveryPolicy;
/// use ws_protocol::message::Variant;
/// use ws_protocol::ws_messages;
///
/// #[ws_messages(outbound)]
/// pub enum Outbound {
///     Chat { text: String },
///     #[ws(volatile)]
///     Typing { user: String },
///     #[ws(latest = "user")]
///     Cursor { user: String, x: f64, y: f64 },
/// }
///
/// fn main() {
///     assert_eq!(outbound::Chat::DELIVERY, DeliveryPolicy::Reliable);
///     assert_eq!(outbound::Typing::DELIVERY, DeliveryPolicy::Volatile);
///     assert_eq!(outbound::Cursor::DELIVERY, DeliveryPolicy::Latest { key: Some("user") });
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeliveryPolicy {
    /// Queued and delivered in order; the client is dropped if it stays behind past the queue's bounds.
    #[default]
    Reliable,
    /// Skipped for a client whose queue holds more than `send_queue_volatile_bytes`.
    Volatile,
    /// A queued frame with the same key that is still waiting is replaced by the newer one.
    Latest {
        /// The payload field whose value, with the type, is the key; `None`: the type alone.
        key: Option<&'static str>,
    },
}

impl DeliveryPolicy {
    /// The policy's name as generated documents write it: `reliable`, `volatile` or `latest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reliable => "reliable",
            Self::Volatile => "volatile",
            Self::Latest { .. } => "latest",
        }
    }
}

/// The policy of one serialized frame, with the key of a latest-value frame.
///
/// Typed messages get theirs from the variant's attribute; untyped frames from
/// `ws_core::protocol::Frame::with_delivery`.
///
/// ```
/// use ws_protocol::delivery::Delivery;
///
/// let user = String::from("ann");
/// assert_eq!(Delivery::latest_by("cursor", &user), Delivery::latest_by("cursor", "ann"));
/// assert_ne!(Delivery::latest_by("cursor", "ann"), Delivery::latest_by("cursor", "bob"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Queued and delivered in order.
    #[default]
    Reliable,
    /// Skipped for a client that is behind.
    Volatile,
    /// Replaces a queued frame with an equal key.
    Latest(LatestKey),
}

impl Delivery {
    /// Latest value wins per message type: `kind` is the key.
    pub fn latest(kind: &str) -> Self {
        Self::Latest(LatestKey::new(kind, None))
    }

    /// Latest value wins per message type and value of `key` (compared as its JSON).
    pub fn latest_by<K: serde::Serialize + ?Sized>(kind: &str, key: &K) -> Self {
        // Keys are plain field values; one that cannot be serialized keys on the type alone.
        let value = serde_json::to_string(key).unwrap_or_default();
        Self::Latest(LatestKey::new(kind, Some(&value)))
    }
}

/// What a latest-value frame replaces: queued frames with an equal key.
///
/// Built once per message; recipients share it through an `Arc`. Its hash is computed once too, so a queue
/// finds the frame to replace with one map look-up.
#[derive(Debug, Clone)]
pub struct LatestKey(Arc<KeyInner>);

#[derive(Debug)]
struct KeyInner {
    hash: u64,
    /// The type's length, the type, then the key field's JSON: no two (type, value) pairs share a text.
    text: Box<str>,
}

impl LatestKey {
    fn new(kind: &str, value: Option<&str>) -> Self {
        Self::from_text(format!("{}:{kind}{}", kind.len(), value.unwrap_or("")))
    }

    /// A key from its [`text`](Self::text), as built here or as another node sent it.
    #[doc(hidden)]
    pub fn from_text(text: String) -> Self {
        let text = text.into_boxed_str();
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        Self(Arc::new(KeyInner {
            hash: hasher.finish(),
            text,
        }))
    }

    /// The key as text, what a node sends another.
    #[doc(hidden)]
    pub fn text(&self) -> &str {
        &self.0.text
    }

    /// The key's hash, computed once.
    #[doc(hidden)]
    pub fn hash(&self) -> u64 {
        self.0.hash
    }
}

impl PartialEq for LatestKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.text == other.0.text)
    }
}

impl Eq for LatestKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_equal_by_type_and_value() {
        let a = Delivery::latest_by("cursor", "ann");
        assert_eq!(a, Delivery::latest_by("cursor", &String::from("ann")));
        assert_ne!(a, Delivery::latest_by("cursor", "bob"));
        assert_ne!(a, Delivery::latest_by("pointer", "ann"));
        assert_ne!(Delivery::latest_by("a", &1), Delivery::latest("a1"));
        assert_eq!(Delivery::latest("progress"), Delivery::latest("progress"));
        assert_ne!(Delivery::latest("progress"), Delivery::Volatile);
    }
}
