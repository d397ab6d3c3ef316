//! The error type handlers return and the codes that reach the wire.
//!
//! A handler error becomes an `$error` frame `{"code", "message"}` when it answers a request (a frame with an
//! `id`). Errors marked [`Error::reported`] are sent even for frames without `id`; `invalid_data` errors
//! always are, because the sender needs to learn that its frame was not understood. Every handler error also reaches the `on_error`
//! hook with its full detail; the wire only carries the code and the public message.
//!
//! [`Error`] is a `std::error::Error`, so it travels through `?` into `Box<dyn Error>`, anyhow or eyre.
//! A handler may return any error type that converts into [`BoxError`] (anyhow's, `std::io::Error`, a
//! string): an `Error` inside keeps its code, anything else becomes `internal`. Sending to a client fails
//! with a [`SendError`], which says why.

use std::borrow::Cow;
use std::fmt;

/// A result whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error, boxed: what a handler's error converts through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// The client has not proven who it is (an authenticator's answer: HTTP 401).
    Unauthorized,
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
    /// The client was built for another version of the protocol (see [`version`](crate::version)).
    ProtocolMismatch,
    /// An application-defined code.
    Custom(Cow<'static, str>),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::UnknownType => "unknown_type",
            Self::InvalidData => "invalid_data",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::LimitExceeded => "limit_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::ProtocolMismatch => "protocol_mismatch",
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
            Self::Unauthorized,
            Self::Forbidden,
            Self::NotFound,
            Self::LimitExceeded,
            Self::RateLimited,
            Self::Internal,
            Self::Timeout,
            Self::Overloaded,
            Self::ProtocolMismatch,
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
/// Other errors become one with [`Error::internal`] (or, from a handler, by returning them: see the
/// [module docs](self)); they get the code `internal` and the public message `internal error`, so
/// implementation details never leak to clients, while `on_error` still sees the original text through
/// [`Error::detail`].
///
/// ```
/// use ws_protocol::Error;
/// use ws_protocol::error::ErrorCode;
///
/// let err = Error::forbidden("admins only");
/// assert_eq!(err.code(), &ErrorCode::Forbidden);
/// assert_eq!(err.message(), "admins only");
///
/// let err = Error::internal("x".parse::<u32>().unwrap_err());
/// assert_eq!(err.code().as_str(), "internal");
/// assert_eq!(err.message(), "internal error");
///
/// // It is a std error, so `?` carries it into `Box<dyn Error>`:
/// fn check() -> Result<(), Box<dyn std::error::Error>> {
///     Err(Error::forbidden("no"))?
/// }
/// assert_eq!(check().unwrap_err().to_string(), "forbidden: no");
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

    /// `unauthorized`: the client has not proven who it is. From an authenticator: HTTP 401.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// `forbidden`: the client may not do this. From an authenticator: HTTP 403.
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
    /// let err = ws_protocol::Error::not_found("no such user").reported();
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

impl std::error::Error for Error {}

impl From<BoxError> for Error {
    /// Keeps the code of an [`Error`] or [`SendError`] inside; anything else is `internal`.
    fn from(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(err) => *err,
            Err(err) => match err.downcast::<SendError>() {
                Ok(err) => (*err).into(),
                Err(err) => Self::internal(err),
            },
        }
    }
}

impl From<serde_json::Error> for Error {
    /// A value that cannot be encoded or decoded: `internal`.
    fn from(err: serde_json::Error) -> Self {
        Self::internal(err)
    }
}

impl axum_core::response::IntoResponse for Error {
    /// The HTTP answer when an authenticator refuses an upgrade with this error: 401 for `unauthorized`,
    /// 403 for `forbidden`, 429 for `rate_limited` and `limit_exceeded`, 404 for `not_found`, 400 for
    /// `invalid_data`, 500 for `internal`, 503 for `overloaded`, 401 for every other code. The body is
    /// the error's message.
    fn into_response(self) -> axum_core::response::Response {
        use http::StatusCode;
        let status = match self.code {
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited | ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::InvalidData => StatusCode::BAD_REQUEST,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        (status, self.message.into_owned()).into_response()
    }
}

/// Why a frame could not be queued for a client.
///
/// Converts into an [`Error`] (`not_found` or `limit_exceeded`) when a handler passes it on with `?`.
///
/// ```
/// use ws_protocol::SendError;
///
/// let err = ws_protocol::Error::from(SendError::Disconnected);
/// assert_eq!(err.code().as_str(), "not_found");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// The client is not connected (it left, or no client has this id).
    Disconnected,
    /// The client's send queue passed its bounds: it is being dropped as a slow consumer, and this frame
    /// was not queued.
    SlowConsumer,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disconnected => "client disconnected",
            Self::SlowConsumer => "send queue full; client dropped",
        })
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for Error {
    fn from(err: SendError) -> Self {
        let code = match err {
            SendError::Disconnected => ErrorCode::NotFound,
            SendError::SlowConsumer => ErrorCode::LimitExceeded,
        };
        Self::new(code, err.to_string())
    }
}
