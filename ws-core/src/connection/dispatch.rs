//! Dispatch: what a data frame becomes once it has been read and admitted by the rate limit.
//!
//! In envelope mode a text frame is decoded into its envelope. The system frames (`$ping`, `$reply`/`$error`
//! answering the server's own requests, and those a feature answers, such as history's `$positions` and
//! `$history`) and unknown types are answered at once, without waiting behind a handler; every other frame is routed to its handler as a
//! [`Call`], which the [pipeline](super::pipeline) runs in arrival order. A binary frame is refused with
//! 1003. In raw mode every frame goes to the raw handler as it is. When a call ends, [`answer_call`] sends
//! the request's `$reply` or `$error`.

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::pipeline::{Call, Job, Pipeline, handler_panicked};
use crate::client::Client;
use crate::close::{self, CloseCode};
use crate::error::{Error, ErrorCode};
use crate::handler::{Next, Reply, Request};
use crate::protocol::{self, Envelope};
use crate::raw::{RawHandler, RawMessage};
use crate::server::{Route, Server};
use crate::stats::bump;

/// A data frame as read.
pub(super) enum Data {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(data) => data.len(),
        }
    }
}

/// Why a frame closes its connection.
pub(super) struct Refusal {
    pub(super) code: CloseCode,
    pub(super) reason: &'static str,
    /// Whether the frame itself was bad (counted in `invalid_frames`), rather than one too many.
    pub(super) invalid: bool,
}

/// Envelope mode or raw mode: chosen once per server.
pub(super) enum Dispatcher {
    Envelope,
    Raw(RawHandler),
}

impl Dispatcher {
    pub(super) fn new(server: &Server) -> Self {
        match &server.app().raw {
            Some(raw) => Self::Raw(raw.clone()),
            None => Self::Envelope,
        }
    }

    /// Answers the frame at once, or hands it to the pipeline; `Err` when it closes the connection.
    pub(super) fn dispatch(
        &self,
        server: &Server,
        client: &Client,
        pipeline: &mut Pipeline<'_>,
        data: Data,
    ) -> Result<(), Refusal> {
        let len = data.len();
        match (self, data) {
            (Self::Envelope, Data::Text(text)) => {
                let Some(incoming) = Envelope::from_frame(text) else {
                    return Err(Refusal {
                        code: close::INVALID_PAYLOAD,
                        reason: "invalid envelope",
                        invalid: true,
                    });
                };
                let Some(call) = route(server, client, incoming) else {
                    return Ok(());
                };
                let id = call.id;
                if pipeline.push(Job::Call(call), len).is_err() {
                    bump(&server.node().stats.overloaded);
                    let err = Error::new(
                        ErrorCode::Overloaded,
                        "too many messages waiting for their handler; this one was dropped",
                    );
                    let _ = client.send(protocol::error_frame(id, &err));
                }
                Ok(())
            }
            (Self::Envelope, Data::Binary(_)) => Err(Refusal {
                code: close::UNSUPPORTED_DATA,
                reason: "binary frames are not supported",
                invalid: true,
            }),
            (Self::Raw(raw), data) => {
                let msg = match data {
                    Data::Text(text) => RawMessage::Text(text.as_str().to_owned()),
                    Data::Binary(data) => RawMessage::Binary(data),
                };
                // Raw mode has no envelope to answer with: a frame past the pipeline's bound closes.
                if pipeline.push(Job::Raw(raw.clone(), msg), len).is_err() {
                    bump(&server.node().stats.overloaded);
                    return Err(Refusal {
                        code: close::POLICY_VIOLATION,
                        reason: "too many messages waiting",
                        invalid: false,
                    });
                }
                Ok(())
            }
        }
    }

    /// The request that crossed the rate limit still gets its answer before the close.
    pub(super) fn answer_rate_limited(&self, client: &Client, data: &Data) {
        let (Self::Envelope, Data::Text(text)) = (self, data) else {
            return;
        };
        if let Some(id) = Envelope::from_frame(text.clone()).and_then(|incoming| incoming.id) {
            let err = Error::new(ErrorCode::RateLimited, "rate limit exceeded");
            let _ = client.send(protocol::error_frame(Some(id), &err));
        }
    }
}

/// The client's answer to a server request, from its `$reply` or `$error` frame.
fn answer(incoming: &Envelope) -> Result<Box<RawValue>, Error> {
    #[derive(serde::Deserialize)]
    struct Body {
        code: String,
        message: String,
    }
    if incoming.kind == protocol::REPLY_TYPE {
        return RawValue::from_string(incoming.data_json().to_owned())
            .map_err(|e| Error::invalid_data(e.to_string()));
    }
    match serde_json::from_str::<Body>(incoming.data_json()) {
        Ok(body) => Err(Error::new(ErrorCode::from_wire(&body.code), body.message)),
        Err(e) => Err(Error::invalid_data(format!("malformed $error: {e}"))),
    }
}

/// Answers what needs no handler (system frames, unknown types); returns the handler call for everything
/// else.
pub(crate) fn route(server: &Server, client: &Client, incoming: Envelope) -> Option<Call> {
    if system_frame(server, client, &incoming) {
        return None;
    }
    let id = incoming.id;
    let Some(route) = server.app().routes.get(&incoming.kind) else {
        bump(&server.node().stats.unknown_types);
        server.app().hooks.unknown_type(client, &incoming.kind);
        if id.is_some() {
            let err = Error::new(
                ErrorCode::UnknownType,
                format!("unknown message type {:?}", incoming.kind),
            );
            let _ = client.send(protocol::error_frame(id, &err));
        }
        return None;
    };
    if route.stream {
        start_stream(server, client, route, incoming);
        return None;
    }
    Some(Call::new(
        id,
        Next::new(server.app().middleware.clone(), route.endpoint.clone()),
        Request::new(client.clone(), incoming),
        route.duration.clone(),
    ))
}

/// Runs a stream's handler in a task of its own, beside the client's other handlers (see
/// [`stream`](crate::stream)); its end, error or panic ends the stream.
fn start_stream(server: &Server, client: &Client, route: &Route, incoming: Envelope) {
    let Some(id) = incoming.id else {
        let err = Error::invalid_data(format!(
            "{:?} is answered with a stream: send it as a request, with an id",
            incoming.kind
        ));
        let _ = client.send(protocol::error_frame(None, &err));
        return;
    };
    let streams = server.node().streams.clone();
    let stream = match streams.open(client.member(), id) {
        Ok(stream) => stream,
        Err(err) => {
            let _ = client.send(protocol::error_frame(Some(id), &err));
            return;
        }
    };
    let request = Request::new(client.clone(), incoming).with_stream(stream.clone());
    let call = Call::new(
        Some(id),
        Next::new(server.app().middleware.clone(), route.endpoint.clone()),
        request,
        route.duration.clone(),
    );
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| call.start()));
    let (server, client) = (server.clone(), client.clone());
    let ending = stream.clone();
    let ends = streams.clone();
    let task = tokio::spawn(async move {
        let outcome = match started {
            Ok(running) => AssertUnwindSafe(running).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        let result = match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => {
                bump(&server.node().stats.handler_errors);
                server.app().hooks.error(&client, &err);
                Err(err)
            }
            Err(panic) => Err(handler_panicked(&server, &client, &*panic)),
        };
        ends.ended(&ending, result);
    });
    streams.started(&stream, task.abort_handle());
}

/// Answers a system frame: `$ping`, `$reply` and `$error` here, the others by the feature that owns them;
/// `false` for a frame that is not one.
fn system_frame(server: &Server, client: &Client, incoming: &Envelope) -> bool {
    let id = incoming.id;
    match incoming.kind.as_str() {
        protocol::PING_TYPE => {
            let _ = client.send(protocol::pong_frame(id));
        }
        protocol::REPLY_TYPE | protocol::ERROR_TYPE => {
            if let Some(id) = id {
                client.member().resolve(id, answer(incoming));
            }
        }
        kind => match server.app().features.system_frames.get(kind) {
            Some(answer) => answer(server.node(), client.member(), incoming),
            None => return false,
        },
    }
    true
}

/// Sends a request's `$reply` or `$error`; reports handler errors.
pub(crate) fn answer_call(
    server: &Server,
    client: &Client,
    id: Option<u64>,
    result: Result<Reply, Error>,
) {
    match result {
        Ok(reply) => {
            if let Some(id) = id {
                let _ = client.send(protocol::reply_frame(id, reply.raw()));
            }
        }
        Err(err) => {
            bump(&server.node().stats.handler_errors);
            server.app().hooks.error(client, &err);
            if id.is_some() || err.is_reported() {
                let _ = client.send(protocol::error_frame(id, &err));
            }
        }
    }
}
