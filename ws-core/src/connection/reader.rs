//! The read task: size limit (enforced by the protocol layer), frame kind, envelope decoding, rate limit,
//! routing, and the [pipeline](super::pipeline) of handlers, polled together with the socket.

use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use super::io::{FrameCounter, MessageTimeout};
use super::pipeline::{Finished, Job, Pipeline};
use super::{Ws, handler_panicked};
use crate::client::Client;
use crate::close::{self, CloseCode};
use crate::error::{Error, ErrorCode};
use crate::handler::{BoxFuture, Next, Reply, Request};
use crate::protocol::{self, Envelope};
use crate::rate_limit::RateLimiter;
use crate::raw::RawMessage;
use crate::server::Inner;
use crate::stats::bump;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// The stream ended: close handshake completed, or the peer went away.
    Closed,
    /// The stream can no longer be parsed, or the peer never answered our close: drain it raw.
    Failed,
    /// The connection was aborted (slow consumer, timeouts, shutdown deadline).
    Aborted,
}

struct Reader<'a> {
    server: &'a Inner,
    client: &'a Client,
    limiter: Option<RateLimiter>,
    /// Continuation frames counted under the protocol layer, charged with the message they belong to.
    continuations: &'a FrameCounter,
    /// Set once a close was sent or received: later data frames are discarded, until this deadline.
    closing: Option<Instant>,
}

impl Reader<'_> {
    fn start_close(&mut self, code: CloseCode, reason: &str) {
        self.client.close(code, reason);
        self.closing
            .get_or_insert_with(|| Instant::now() + self.server.config.close_timeout);
    }

    fn reject(&mut self, code: CloseCode, reason: &str) {
        bump(&self.server.stats.invalid_frames);
        tracing::trace!(target: "ws_core::rejection", client_id = %self.client.id(), code, reason, "closing");
        self.start_close(code, reason);
    }

    /// Takes a token for one frame; `false` when there is none.
    fn admit(&mut self) -> bool {
        self.limiter
            .as_mut()
            .is_none_or(|limiter| limiter.try_acquire(std::time::Instant::now()))
    }

    /// Takes a token for a data message and one for each continuation frame it was sent in.
    fn admit_message(&mut self) -> bool {
        let continuations = self.continuations.swap(0, Ordering::Relaxed);
        (0..=continuations).all(|_| self.admit())
    }

    /// Closes the client with 1008 for exceeding its rate limit.
    fn rate_limited(&mut self) {
        bump(&self.server.stats.rate_limit_closes);
        self.start_close(close::POLICY_VIOLATION, "rate limit exceeded");
    }
}

pub(super) async fn run(
    stream: &mut SplitStream<Ws>,
    client: &Client,
    continuations: &FrameCounter,
) -> ReadEnd {
    let server = client.server_inner().clone();
    let config = &server.config;
    let mut reader = Reader {
        server: &server,
        client,
        limiter: RateLimiter::new(
            config.message_rate_limit,
            config.message_burst_size,
            std::time::Instant::now(),
        ),
        continuations,
        closing: None,
    };
    let mut pipeline = Pipeline::new(&server, client);
    let mut peer_closed = false;
    // How reading ended, once it has: the jobs accepted before still run, within `close_timeout`.
    let mut input: Option<ReadEnd> = None;

    loop {
        pipeline.start_next();
        if let Some(end) = input {
            if pipeline.is_idle() {
                return end;
            }
            reader
                .closing
                .get_or_insert_with(|| Instant::now() + config.close_timeout);
        }
        let deadline = reader.closing;
        let running = pipeline.is_running();
        let next = tokio::select! {
            biased;
            () = client.aborted(), if !peer_closed => return ReadEnd::Aborted,
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return input.unwrap_or(ReadEnd::Failed);
            }
            finished = pipeline.finished(), if running => {
                reader.finish(finished);
                continue;
            }
            next = stream.next(), if input.is_none() => next,
        };
        let msg = match next {
            None => {
                input = Some(ReadEnd::Closed);
                continue;
            }
            Some(Ok(msg)) => msg,
            Some(Err(err)) => {
                input = Some(read_failed(&mut reader, peer_closed, &err));
                continue;
            }
        };
        match msg {
            WsMessage::Close(_) => {
                // The protocol layer has queued our reply; the next read flushes it and ends the stream.
                peer_closed = true;
                reader
                    .closing
                    .get_or_insert_with(|| Instant::now() + config.close_timeout);
            }
            WsMessage::Pong(_) => {
                client.record_pong();
                // Unsolicited pongs are frames like any other: they take a token.
                if reader.closing.is_none() && !reader.admit() {
                    reader.rate_limited();
                }
            }
            WsMessage::Ping(_) => {
                if reader.closing.is_none() && !reader.admit() {
                    reader.rate_limited();
                }
            }
            WsMessage::Frame(_) => {}
            WsMessage::Text(text) => {
                bump(&server.stats.messages_received);
                if reader.closing.is_some() {
                    continue;
                }
                if !reader.admit_message() {
                    // The request that crossed the limit still gets its answer before the close.
                    if server.raw.is_none()
                        && let Some(id) =
                            Envelope::from_frame(text).and_then(|incoming| incoming.id)
                    {
                        let err = Error::new(ErrorCode::RateLimited, "rate limit exceeded");
                        let _ = client.send(protocol::error_frame(Some(id), &err));
                    }
                    reader.rate_limited();
                    continue;
                }
                match &server.raw {
                    Some(raw) => {
                        let len = text.len();
                        let job = Job::Raw(raw.clone(), RawMessage::Text(text.as_str().to_owned()));
                        reader.accept_raw(&mut pipeline, job, len);
                    }
                    None => reader.accept(&mut pipeline, text),
                }
            }
            WsMessage::Binary(data) => {
                bump(&server.stats.messages_received);
                if reader.closing.is_some() {
                    continue;
                }
                if !reader.admit_message() {
                    reader.rate_limited();
                    continue;
                }
                match &server.raw {
                    Some(raw) => {
                        let len = data.len();
                        reader.accept_raw(
                            &mut pipeline,
                            Job::Raw(raw.clone(), RawMessage::Binary(data)),
                            len,
                        );
                    }
                    None => {
                        reader.reject(close::UNSUPPORTED_DATA, "binary frames are not supported")
                    }
                }
            }
        }
    }
}

impl Reader<'_> {
    /// Decodes an envelope, answers what needs no handler at once, and hands the rest to the pipeline.
    fn accept(&mut self, pipeline: &mut Pipeline<'_>, text: Utf8Bytes) {
        let (server, client) = (self.server, self.client);
        let len = text.len();
        let Some(incoming) = Envelope::from_frame(text) else {
            self.reject(close::INVALID_PAYLOAD, "invalid envelope");
            return;
        };
        let Some(call) = route(server, client, incoming) else {
            return;
        };
        let id = call.id;
        if pipeline.push(Job::Call(call), len).is_err() {
            bump(&server.stats.overloaded);
            let err = Error::new(
                ErrorCode::Overloaded,
                "too many messages waiting for their handler; this one was dropped",
            );
            let _ = client.send(protocol::error_frame(id, &err));
        }
    }

    /// Raw mode has no envelope to answer with: a frame past the pipeline's bound closes the connection.
    fn accept_raw(&mut self, pipeline: &mut Pipeline<'_>, job: Job, len: usize) {
        if pipeline.push(job, len).is_err() {
            bump(&self.server.stats.overloaded);
            self.start_close(close::POLICY_VIOLATION, "too many messages waiting");
        }
    }

    /// Answers a finished handler call; a panic closes the client with 1011.
    fn finish(&mut self, finished: Finished) {
        let (server, client) = (self.server, self.client);
        match finished {
            Finished::Call(id, Ok(result)) => answer_call(server, client, id, result),
            Finished::Call(id, Err(panic)) => {
                let err = handler_panicked(server, client, &*panic);
                if id.is_some() {
                    let _ = client.send(protocol::error_frame(id, &err));
                }
                self.start_close(close::INTERNAL_ERROR, "internal error");
            }
            Finished::Unit(Ok(())) => {}
            Finished::Unit(Err(panic)) => {
                handler_panicked(server, client, &*panic);
                self.start_close(close::INTERNAL_ERROR, "internal error");
            }
        }
    }
}

fn read_failed(reader: &mut Reader<'_>, peer_closed: bool, err: &WsError) -> ReadEnd {
    if peer_closed || reader.closing.is_some() {
        return ReadEnd::Failed;
    }
    let (code, reason) = match err {
        WsError::Io(err) if MessageTimeout::is(err) => {
            (close::POLICY_VIOLATION, "message not completed in time")
        }
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_)
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return ReadEnd::Closed,
        WsError::Capacity(_) => (close::MESSAGE_TOO_BIG, "message too big"),
        WsError::Utf8(_) => (close::INVALID_PAYLOAD, "invalid UTF-8"),
        _ => (close::PROTOCOL_ERROR, "protocol error"),
    };
    reader.reject(code, reason);
    ReadEnd::Failed
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

/// A frame routed to its handler, not started yet.
pub(crate) struct Call {
    pub(crate) id: Option<u64>,
    next: Next,
    request: Request,
    /// Where the handler's duration is recorded.
    pub(crate) duration: Histogram,
}

impl Call {
    /// The message's type.
    pub(crate) fn kind(&self) -> &str {
        self.request.kind()
    }

    /// Starts the middleware chain, which ends in the handler: user code runs in this call already.
    pub(crate) fn start(self) -> BoxFuture<Result<Reply, Error>> {
        self.next.run(self.request)
    }
}

/// Answers what needs no handler (`$ping`, answers to server requests, unknown types); returns the
/// handler call for everything else.
pub(crate) fn route(server: &Inner, client: &Client, incoming: Envelope) -> Option<Call> {
    let id = incoming.id;
    match incoming.kind.as_str() {
        protocol::PING_TYPE => {
            let _ = client.send(protocol::pong_frame(id));
            return None;
        }
        protocol::POSITIONS_TYPE => {
            if server.history.is_some() || server.cluster_history {
                let config = &server.config;
                crate::history::set_positions(
                    client,
                    incoming.data_json(),
                    config.max_groups_per_client,
                    config.max_group_name_bytes,
                );
            }
            if let Some(id) = id {
                let _ = client.send(protocol::reply_frame(id, RawValue::NULL));
            }
            return None;
        }
        protocol::HISTORY_TYPE => {
            if let Some(id) = id {
                let answer = match &server.history {
                    Some(history) => history.fetch(client, incoming.data_json()),
                    None if server.cluster_history => {
                        match crate::history::HistoryRequest::parse(incoming.data_json()) {
                            Ok(request) => {
                                let (group, since) = (&request.group, request.since);
                                server.backplane.fetch_history(client, id, group, since);
                                return None;
                            }
                            Err(err) => Err(err),
                        }
                    }
                    None => Err(Error::not_found("this server keeps no history")),
                };
                let frame = match answer {
                    Ok(data) => protocol::reply_frame(id, &data),
                    Err(err) => protocol::error_frame(Some(id), &err),
                };
                let _ = client.send(frame);
            }
            return None;
        }
        protocol::REPLY_TYPE | protocol::ERROR_TYPE => {
            if let Some(id) = id {
                let answer = answer(&incoming);
                client.resolve(id, answer);
            }
            return None;
        }
        _ => {}
    }
    let Some(route) = server.routes.get(&incoming.kind) else {
        bump(&server.stats.unknown_types);
        server.hooks.unknown_type(client, &incoming.kind);
        if id.is_some() {
            let err = Error::new(
                ErrorCode::UnknownType,
                format!("unknown message type {:?}", incoming.kind),
            );
            let _ = client.send(protocol::error_frame(id, &err));
        }
        return None;
    };
    Some(Call {
        id,
        next: Next::new(server.middleware.clone(), route.endpoint.clone()),
        request: Request::new(client.clone(), incoming),
        duration: route.duration.clone(),
    })
}

/// Sends a request's `$reply` or `$error`; reports handler errors.
pub(crate) fn answer_call(
    server: &Inner,
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
            bump(&server.stats.handler_errors);
            server.hooks.error(client, &err);
            if id.is_some() || err.is_reported() {
                let _ = client.send(protocol::error_frame(id, &err));
            }
        }
    }
}
