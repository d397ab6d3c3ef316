//! Raw mode: frames delivered as they are, without the envelope.
//!
//! A server built with [`ServerBuilder::raw`](crate::ServerBuilder::raw) hands every text and binary frame
//! to one callback. The gates and limits stay the same (origin, authenticator, `max_connections`,
//! `max_message_size`, rate limit, send queue, pings); only the envelope decoding and routing are skipped.

use std::sync::Arc;

use bytes::Bytes;

use crate::client::Client;
use crate::handler::BoxFuture;

/// One data frame in raw mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawMessage {
    /// A text frame (valid UTF-8, checked by the protocol layer).
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

pub(crate) type RawHandler = Arc<dyn Fn(Client, RawMessage) -> BoxFuture<()> + Send + Sync>;
