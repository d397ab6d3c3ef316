//! The wire format: one text frame is one JSON object, the envelope
//! `{"type", "data", "target"?, "from"?, "id"?}`.
//!
//! Incoming frames are decoded in two steps: first the envelope's small fields, with `data` kept as the raw
//! JSON text it was sent as (no allocation, no tree), then `data` straight into whatever the handler wants.
//! A `from` sent by a client is ignored: the server writes `from` itself when it relays on a client's behalf.
//!
//! Names starting with `$` are reserved for system frames: `$reply` answers a request, `$error` reports a
//! failure (with the request's `id` when it answers one).

use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WireFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::{self, Utf8Bytes};

use crate::compression::deflate;
use crate::compression::negotiate::Negotiated;
use crate::delivery::Delivery;
use crate::error::Error;
use crate::stats::bump;

/// The `type` of a reply to a request.
pub const REPLY_TYPE: &str = "$reply";
/// The `type` of an error frame.
pub const ERROR_TYPE: &str = "$error";
/// The `type` of a client's heartbeat; the server answers with [`PONG_TYPE`] at once.
pub const PING_TYPE: &str = "$ping";
/// The `type` of the server's answer to [`PING_TYPE`].
pub const PONG_TYPE: &str = "$pong";
/// The `type` of the member list of a group with presence, sent to a client when it joins
/// ([`presence`](crate::presence)).
pub const PRESENCE_STATE_TYPE: &str = "$presence_state";
/// The `type` of the joins and leaves of a group with presence since the last tick.
pub const PRESENCE_DIFF_TYPE: &str = "$presence_diff";
/// The `type` of where a client stands in a group's history, sent when it joins a group with history
/// ([`history`](crate::history)).
pub const POSITION_TYPE: &str = "$position";
/// The `type` of a client's last positions in groups' histories, `{"<group>": {"epoch", "offset"}}`, sent
/// before it joins them again so that it gets what it missed.
pub const POSITIONS_TYPE: &str = "$positions";
/// The `type` of a request for a group's kept frames, `{"group", "since"?}`, answered with
/// `{"group", "epoch", "offset", "complete", "frames": [...]}` (members only).
pub const HISTORY_TYPE: &str = "$history";
/// The largest request `id`: ids are integers below 2^53 so that JavaScript numbers hold them exactly.
pub const MAX_REQUEST_ID: u64 = (1 << 53) - 1;

/// A message in the JSON envelope, as handlers receive it and as the server sends it.
///
/// ```
/// use serde_json::json;
/// use ws_core::protocol::Message;
///
/// let msg = Message::new("chat", json!({"text": "hi"})).with_from("c1");
/// assert_eq!(
///     serde_json::to_string(&msg).unwrap(),
///     r#"{"type":"chat","data":{"text":"hi"},"from":"c1"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The routing key, `type` on the wire.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload; `null` when absent.
    #[serde(default)]
    pub data: Value,
    /// A client id for a direct send. The server never routes on it by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The client the message comes from, always written by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The request id, when the message is a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

impl Message {
    /// A message with a type and data, nothing else.
    pub fn new(kind: impl Into<String>, data: impl Into<Value>) -> Self {
        Self {
            kind: kind.into(),
            data: data.into(),
            target: None,
            from: None,
            id: None,
        }
    }

    /// Sets `from`.
    #[must_use]
    pub fn with_from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// Sets `target`.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Decodes `data` into a Rust type.
    ///
    /// # Errors
    ///
    /// An `invalid_data` [`Error`] when `data` does not fit `T`; returned from a handler with `?`, the
    /// client gets an `$error` frame with that code.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.data).map_err(|e| Error::invalid_data(e.to_string()))
    }
}

/// One serialized frame, ready for any number of clients.
///
/// Cloning is a reference-count increment: a broadcast serializes its message once and every recipient's
/// queue holds the same bytes. A frame carries its [`Delivery`] policy, which each recipient's queue applies.
#[derive(Debug, Clone)]
pub struct Frame {
    pub(crate) message: tungstenite::Message,
    pub(crate) delivery: Delivery,
    /// The frame as compressing clients get it, made by the first of them to be sent it; every recipient of a fan-out is handed the same `&Frame`, so it is made once.
    deflated: OnceLock<Option<tungstenite::Message>>,
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.delivery == other.delivery
    }
}

impl Frame {
    /// Serializes a message once.
    pub fn from_message(msg: &Message) -> Self {
        Self::serialized(msg)
    }

    /// Serializes `{"type": kind, "data": data}` straight from `data`, for untyped messages.
    ///
    /// ```
    /// use ws_core::protocol::Frame;
    ///
    /// let frame = Frame::envelope("chat", &serde_json::json!({"text": "hi"}));
    /// assert_eq!(frame.as_text(), Some(r#"{"type":"chat","data":{"text":"hi"}}"#));
    /// ```
    pub fn envelope<T: Serialize + ?Sized>(kind: &str, data: &T) -> Self {
        encode(kind, data, None)
    }

    /// An `$error` frame without `id`, for an error that answers no request.
    ///
    /// ```
    /// use ws_core::Error;
    /// use ws_core::protocol::Frame;
    ///
    /// let frame = Frame::error(&Error::forbidden("admins only"));
    /// assert_eq!(
    ///     frame.as_text(),
    ///     Some(r#"{"type":"$error","data":{"code":"forbidden","message":"admins only"}}"#)
    /// );
    /// ```
    pub fn error(err: &Error) -> Self {
        error_frame(None, err)
    }

    /// Serializes any value as a text frame.
    pub(crate) fn serialized<T: Serialize + ?Sized>(value: &T) -> Self {
        // Serializing plain data into a String cannot fail: map keys are strings and there is no I/O.
        let text = serde_json::to_string(value).unwrap_or_else(|_| String::from("null"));
        Self::text(text)
    }

    /// A text frame as it is.
    pub fn text(text: impl Into<String>) -> Self {
        Self::reliable(tungstenite::Message::Text(Utf8Bytes::from(text.into())))
    }

    fn reliable(message: tungstenite::Message) -> Self {
        Self {
            message,
            delivery: Delivery::Reliable,
            deflated: OnceLock::new(),
        }
    }

    /// What to queue for a client that negotiated compression: the frame compressed, or as it is when
    /// shorter than the minimum size. Compressions are counted in `compressed`.
    pub(crate) fn for_compressing_client(
        &self,
        compression: &Negotiated,
        compressed: &AtomicU64,
    ) -> tungstenite::Message {
        let (payload, opcode) = match &self.message {
            tungstenite::Message::Text(text) => (text.as_bytes(), OpData::Text),
            tungstenite::Message::Binary(data) => (&data[..], OpData::Binary),
            _ => return self.message.clone(),
        };
        if payload.len() < compression.min_size {
            return self.message.clone();
        }
        let deflate = || {
            let bytes = deflate::compress(payload, compression.level, compression.window_bits())?;
            bump(compressed);
            let mut frame = WireFrame::message(bytes, OpCode::Data(opcode), true);
            frame.header_mut().rsv1 = true;
            Some(tungstenite::Message::Frame(frame))
        };
        // Shared by every client with the full window; a client that asked for a smaller one (no browser
        // does) has its own compression.
        let deflated = if compression.window_bits() == 15 {
            self.deflated.get_or_init(deflate).clone()
        } else {
            deflate()
        };
        deflated.unwrap_or_else(|| self.message.clone())
    }

    /// The same frame with another delivery policy (see [`delivery`](crate::delivery)).
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// The frame's delivery policy.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// A text frame from bytes received elsewhere (another node), without copying them; `None` when
    /// they are not UTF-8.
    pub fn text_from_bytes(bytes: Bytes) -> Option<Self> {
        Utf8Bytes::try_from(bytes)
            .ok()
            .map(|t| Self::reliable(tungstenite::Message::Text(t)))
    }

    /// A binary frame (raw mode only: the envelope protocol is text).
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::reliable(tungstenite::Message::Binary(data.into()))
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.message.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.message.is_empty()
    }

    /// The payload of a binary frame.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match &self.message {
            tungstenite::Message::Binary(data) => Some(data),
            _ => None,
        }
    }

    /// The text of a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match &self.message {
            tungstenite::Message::Text(t) => Some(t.as_str()),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct OutEnvelope<'a, T: Serialize + ?Sized> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
}

/// Serializes `{"type": kind, "data": data}` without building a `Value` first.
/// The length of `value`'s JSON text, counted without building it.
pub(crate) fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Only a failing `Serialize` impl can fail here; it then counts what it wrote before failing.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

pub(crate) fn encode<T: Serialize + ?Sized>(kind: &str, data: &T, from: Option<&str>) -> Frame {
    Frame::serialized(&OutEnvelope { kind, data, from })
}

#[derive(Serialize)]
struct ReplyEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    data: &'a RawValue,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    data: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

pub(crate) fn reply_frame(id: u64, data: &RawValue) -> Frame {
    Frame::serialized(&ReplyEnvelope {
        kind: REPLY_TYPE,
        id,
        data,
    })
}

/// The answer to `$ping`, with the ping's `id` when it had one.
pub(crate) fn pong_frame(id: Option<u64>) -> Frame {
    match id {
        Some(id) => Frame::text(format!(r#"{{"type":"{PONG_TYPE}","id":{id}}}"#)),
        None => Frame::text(format!(r#"{{"type":"{PONG_TYPE}"}}"#)),
    }
}

/// A request from the server to the client: `{"type", "data", "id"}`.
pub(crate) fn request_frame<T: Serialize + ?Sized>(kind: &str, data: &T, id: u64) -> Frame {
    #[derive(Serialize)]
    struct RequestEnvelope<'a, T: ?Sized> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: &'a T,
        id: u64,
    }
    Frame::serialized(&RequestEnvelope { kind, data, id })
}

pub(crate) fn error_frame(id: Option<u64>, err: &Error) -> Frame {
    Frame::serialized(&ErrorEnvelope {
        kind: ERROR_TYPE,
        id,
        data: ErrorBody {
            code: err.code().as_str(),
            message: err.message(),
        },
    })
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    id: Option<u64>,
}

/// A client frame's envelope, decoded exactly as the server decodes every incoming text frame: `type`,
/// `id` and `target` read, `data` kept as the JSON text it was sent as (inside the frame's bytes: nothing
/// is copied), unknown keys and a client's `from` ignored. The payload is decoded afterwards, by the
/// handler of `type` ([`InboundMessages::decode`](crate::message::InboundMessages::decode) for a typed
/// message set).
///
/// ```
/// use ws_core::protocol::Envelope;
///
/// let envelope = Envelope::parse(r#"{"type":"chat","data":{"text":"hi"},"id":7}"#).unwrap();
/// assert_eq!((envelope.kind(), envelope.id()), ("chat", Some(7)));
/// assert_eq!(envelope.data_json(), r#"{"text":"hi"}"#);
/// // Not an envelope: the server closes the connection with 1007.
/// assert!(Envelope::parse(r#"{"type":"chat","id":-1}"#).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Envelope {
    pub(crate) kind: String,
    pub(crate) id: Option<u64>,
    pub(crate) target: Option<String>,
    frame: Utf8Bytes,
    data: Option<Range<usize>>,
}

impl Envelope {
    /// Decodes the envelope of a text frame. `None` means the frame is invalid (close 1007): not a JSON
    /// object with a string `type`, an `id` that is not an integer in `0..2^53`, or a `target` that is
    /// not a string.
    pub fn parse(text: &str) -> Option<Self> {
        Self::from_frame(Utf8Bytes::from(text.to_owned()))
    }

    /// The frame's `type`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The request id, when the frame is a request.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// The frame's `target`, if any.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// [`Envelope::parse`] without copying the frame.
    pub(crate) fn from_frame(frame: Utf8Bytes) -> Option<Self> {
        let text = frame.as_str();
        let raw: RawEnvelope<'_> = serde_json::from_str(text).ok()?;
        if raw.id.is_some_and(|id| id > MAX_REQUEST_ID) {
            return None;
        }
        let data = raw.data.map(|d| {
            let start = d.get().as_ptr() as usize - text.as_ptr() as usize;
            start..start + d.get().len()
        });
        Some(Self {
            kind: raw.kind.into_owned(),
            id: raw.id,
            target: raw.target,
            data,
            frame,
        })
    }

    /// The raw JSON text of `data` (`null` when absent).
    pub fn data_json(&self) -> &str {
        match &self.data {
            Some(range) => &self.frame.as_str()[range.clone()],
            None => "null",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Envelope> {
        Envelope::parse(s)
    }

    #[test]
    fn decodes_envelope_fields_and_keeps_data_raw() {
        let inc = parse(r#"{"type":"chat","data":{"text":"a\"b"},"id":7,"from":"x","target":"y"}"#)
            .unwrap();
        assert_eq!(inc.kind, "chat");
        assert_eq!(inc.id, Some(7));
        assert_eq!(inc.target.as_deref(), Some("y"));
        assert_eq!(inc.data_json(), r#"{"text":"a\"b"}"#);
    }

    #[test]
    fn escaped_type_is_decoded() {
        assert_eq!(parse(r#"{"type":"ch\u0061t"}"#).unwrap().kind, "chat");
        assert_eq!(parse(r#"{"type":"chat"}"#).unwrap().data_json(), "null");
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        for bad in [
            "not json",
            "[1,2]",
            r#""chat""#,
            r#"{"data":1}"#,
            r#"{"type":5}"#,
            r#"{"type":"a","id":-1}"#,
            r#"{"type":"a","id":1.5}"#,
            r#"{"type":"a","id":"7"}"#,
            r#"{"type":"a","id":9007199254740992}"#,
        ] {
            assert!(parse(bad).is_none(), "{bad} should be rejected");
        }
        assert_eq!(
            parse(r#"{"type":"a","id":9007199254740991}"#).unwrap().id,
            Some(MAX_REQUEST_ID)
        );
    }

    #[test]
    fn system_frames_have_the_documented_shape() {
        let raw = RawValue::from_string("{\"ok\":true}".into()).unwrap();
        assert_eq!(
            reply_frame(3, &raw).as_text().unwrap(),
            r#"{"type":"$reply","id":3,"data":{"ok":true}}"#
        );
        let err = Error::forbidden("no");
        assert_eq!(
            error_frame(None, &err).as_text().unwrap(),
            r#"{"type":"$error","data":{"code":"forbidden","message":"no"}}"#
        );
    }
}
