//! The close codes this server sends, each tied to the situation that sends it.
//!
//! Codes follow RFC 6455 §7.4.1. A client that sees one of these knows exactly why it was disconnected,
//! and whether reconnecting makes sense (1001 and 1011: yes, after a pause; 1008 and 1009: not with the
//! same behaviour).

/// A close code the server may send in a close frame: one of the constants below, another code RFC 6455
/// lets an endpoint send (1000–1003, 1007–1014), or an application's own (3000–4999, see
/// [`CloseCode::application`]). Codes that must never appear in a close frame (1004–1006, 1015, below 1000
/// or above 4999) cannot be made.
///
/// ```
/// use ws_core::close::{self, CloseCode};
///
/// const TOKEN_EXPIRED: CloseCode = CloseCode::application(4001);
/// assert_eq!(u16::from(TOKEN_EXPIRED), 4001);
/// assert_eq!(CloseCode::try_from(1008), Ok(close::POLICY_VIOLATION));
/// assert!(CloseCode::try_from(1006).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// An application's own code, 4000–4999 (RFC 6455 §7.4.2: private use).
    ///
    /// # Panics
    ///
    /// Outside 4000–4999; in a `const` item, that is a compile error.
    #[must_use]
    pub const fn application(code: u16) -> Self {
        assert!(
            code >= 4000 && code <= 4999,
            "an application's close code is 4000-4999"
        );
        Self(code)
    }

    /// The code as a number.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

/// A number that is not a close code an endpoint may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSendable(pub u16);

impl std::fmt::Display for NotSendable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not a close code an endpoint may send", self.0)
    }
}

impl std::error::Error for NotSendable {}

impl TryFrom<u16> for CloseCode {
    type Error = NotSendable;

    fn try_from(code: u16) -> Result<Self, NotSendable> {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(Self(code)),
            _ => Err(NotSendable(code)),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// 1000: the connection finished its purpose (an application closed it on purpose).
pub const NORMAL: CloseCode = CloseCode(1000);
/// 1001: the server is shutting down ([`Server::stop`](crate::Server::stop)).
pub const GOING_AWAY: CloseCode = CloseCode(1001);
/// 1002: the peer broke the WebSocket protocol (bad framing, bad close code, …).
pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
/// 1003: a binary frame arrived where a JSON text frame is expected.
pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
/// 1007: the text is not valid UTF-8, or not a JSON object with a string `type` (and a valid `id`).
pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
/// 1006: never sent in a close frame (RFC 6455 §7.4.1), so not a [`CloseCode`]: what a peer sees when the
/// connection ends without one. The server's metrics count with it the connections it reset (a missing
/// pong, a blocked write, the shutdown deadline).
pub const ABNORMAL: u16 = 1006;
/// 1008: policy violation: over the rate limit, or too slow to read what the server sends.
pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
/// 1009: a message larger than `max_message_size`.
pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
/// 1011: a handler panicked while serving this client.
pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
/// 3409: the client was built for another version of the protocol, and the server closes such clients
/// ([`ProtocolVersion::close_others`](crate::version::ProtocolVersion::close_others)); reloading the
/// frontend is the cure, reconnecting is not.
pub const PROTOCOL_MISMATCH: CloseCode = CloseCode(3409);
