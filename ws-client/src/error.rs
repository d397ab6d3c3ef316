//! What can go wrong, typed.

use std::fmt;

/// How a connection ended: its close frame's code and reason (1006 and the cause when there was none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code.
    pub code: u16,
    /// The close reason.
    pub reason: String,
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.reason)
        }
    }
}

/// Why a send or a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered the request with `$error`: its code and message.
    Server(ws_protocol::Error),
    /// No answer within the request's timeout.
    Timeout,
    /// The connection was lost before the answer came (the request may or may not have run).
    Lost(CloseInfo),
    /// The client is closed for good: by [`Client::close`](crate::Client::close), or by a close its
    /// policy does not retry (named here).
    Closed(Option<CloseInfo>),
    /// Too many frames wait for a connection, or too many requests for their answers.
    QueueFull,
    /// The reply did not decode into the request's reply type.
    InvalidReply(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(e) => write!(f, "{}: {}", e.code().as_str(), e.message()),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Lost(close) => write!(f, "connection lost ({close})"),
            Self::Closed(Some(close)) => write!(f, "the connection ended for good ({close})"),
            Self::Closed(None) => f.write_str("the client is closed"),
            Self::QueueFull => f.write_str("too many frames or requests waiting"),
            Self::InvalidReply(e) => write!(f, "reply does not fit its type: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}
