//! The close codes this server sends, each tied to the situation that sends it.
//!
//! Codes follow RFC 6455 §7.4.1. A client that sees one of these knows exactly why it was disconnected,
//! and whether reconnecting makes sense (1001 and 1011: yes, after a pause; 1008 and 1009: not with the
//! same behaviour).

/// A WebSocket close code.
pub type CloseCode = u16;

/// 1000: the connection finished its purpose (an application closed it on purpose).
pub const NORMAL: CloseCode = 1000;
/// 1001: the server is shutting down ([`Server::stop`](crate::Server::stop)).
pub const GOING_AWAY: CloseCode = 1001;
/// 1002: the peer broke the WebSocket protocol (bad framing, bad close code, …).
pub const PROTOCOL_ERROR: CloseCode = 1002;
/// 1003: a binary frame arrived where a JSON text frame is expected.
pub const UNSUPPORTED_DATA: CloseCode = 1003;
/// 1007: the text is not valid UTF-8, or not a JSON object with a string `type` (and a valid `id`).
pub const INVALID_PAYLOAD: CloseCode = 1007;
/// 1006: never sent in a close frame (RFC 6455 §7.4.1): what a peer sees when the connection ends without
/// one. The server's metrics count with it the connections it reset (a missing pong, a blocked write, the
/// shutdown deadline).
pub const ABNORMAL: CloseCode = 1006;
/// 1008: policy violation: over the rate limit, or too slow to read what the server sends.
pub const POLICY_VIOLATION: CloseCode = 1008;
/// 1009: a message larger than `max_message_size`.
pub const MESSAGE_TOO_BIG: CloseCode = 1009;
/// 1011: a handler panicked while serving this client.
pub const INTERNAL_ERROR: CloseCode = 1011;
