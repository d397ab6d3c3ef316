//! The error type handlers return and the codes that reach the wire.
//!
//! A handler error becomes an `$error` frame `{"code", "message"}` when it answers a request (a frame with an
//! `id`). Errors marked [`Error::reported`] are sent even for frames without `id`; `invalid_data` errors
//! always are, because the sender needs to learn that its frame was not understood. Every handler error also reaches the `on_error`
//! hook with its full detail; the wire only carries the code and the public message.

use std::borrow::Cow;
use std::fmt;

/// A result whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `code` of an `$error` frame.
///
/// The well-known codes are variants; anything else is [`ErrorCode::Custom`]. On the wire every code is a
/// lowercase snake_case string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No handler is registered for the frame's `type` (only requests are answered).
    UnknownType,
    /// The frame's `data` does not match what the handler expects.
    InvalidData,
    /// The client may not do this.
    Forbidden,
    /// The thing named does not exist (a client, a group).
    NotFound,
    /// A per-client limit was reached (for example the number of groups a client may join).
    LimitExceeded,
    /// The request arrived over the client's rate limit; the connection is closing with 1008.
    RateLimited,
    /// The handler failed for a reason the client should not see in detail.
    Internal,
    /// A request got no answer in time.
    Timeout,
    /// Too many of the client's frames were waiting for their handler: this one was refused, and the
    /// connection stays.
    Overloaded,
    /// An application-defined code.
    Custom(Cow<'static, str>),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::UnknownType => "unknown_type",
            Self::InvalidData => "invalid_data",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::LimitExceeded => "limit_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::Custom(code) => code,
        }
    }
}

impl ErrorCode {
    /// The code a wire string stands for (unknown codes become [`ErrorCode::Custom`]).
    pub fn from_wire(code: &str) -> Self {
        let known = [
            Self::UnknownType,
            Self::InvalidData,
            Self::Forbidden,
            Self::NotFound,
            Self::LimitExceeded,
            Self::RateLimited,
            Self::Internal,
            Self::Timeout,
            Self::Overloaded,
        ];
        known
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or_else(|| Self::Custom(Cow::Owned(code.to_owned())))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a wire [`ErrorCode`] and a message meant for the client.
///
/// Any `std::error::Error` converts into it with `?`; such errors get the code `internal` and the public
/// message `internal error`, so implementation details never leak to clients, while `on_error` still sees
/// the original text through [`Error::detail`].
///
/// ```
/// use ws_core::{Error, ErrorCode};
///
/// let err = Error::forbidden("admins only");
/// assert_eq!(err.code(), &ErrorCode::Forbidden);
/// assert_eq!(err.message(), "admins only");
///
/// let parse: Result<u32, _> = "x".parse::<u32>();
/// let err: Error = parse.unwrap_err().into();
/// assert_eq!(err.code().as_str(), "internal");
/// assert_eq!(err.message(), "internal error");
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    code: ErrorCode,
    message: Cow<'static, str>,
    detail: Option<String>,
    reported: bool,
}

impl Error {
    /// An error with any code and a message the client will see.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reported: code == ErrorCode::InvalidData,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// An error with an application-defined code.
    pub fn custom(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(ErrorCode::Custom(code.into()), message)
    }

    /// `forbidden`: the client may not do this.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `not_found`: the named client or group does not exist.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `invalid_data`: the frame's `data` does not fit the message type.
    pub fn invalid_data(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidData, message)
    }

    /// `internal`: a failure whose detail stays on the server.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: Cow::Borrowed("internal error"),
            detail: Some(detail.to_string()),
            reported: false,
        }
    }

    /// Marks the error to be sent to the client as an `$error` frame (without `id`) even when the frame that
    /// caused it was not a request. `invalid_data` errors are always reported.
    ///
    /// ```
    /// let err = ws_core::Error::not_found("no such user").reported();
    /// assert!(err.is_reported());
    /// ```
    #[must_use]
    pub fn reported(mut self) -> Self {
        self.reported = true;
        self
    }

    /// Whether the client hears of this error even when it did not send a request.
    pub fn is_reported(&self) -> bool {
        self.reported
    }

    /// The wire code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server-side detail of an internal error, if any (never sent to the client).
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        Self::internal(err)
    }
}
