//! The read task: size limit (enforced by the protocol layer), frame kind, rate limit, then
//! [dispatch](super::dispatch) and the [pipeline](super::pipeline) of handlers, polled together with the
//! socket.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};

use super::dispatch::{Data, Dispatcher, answer_call};
use super::io::{FrameCounter, MessageTimeout, Ws};
use super::pipeline::{Finished, Pipeline, handler_panicked};
use crate::client::Client;
use crate::close::{self, CloseCode};
use crate::compression::inflate::InflateError;
use crate::protocol;
use crate::rate_limit::RateLimiter;
use crate::server::Server;
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
    server: &'a Server,
    client: &'a Client,
    dispatcher: Dispatcher,
    limiter: Option<RateLimiter>,
    /// Continuation frames counted under the protocol layer, charged with the message they belong to.
    continuations: &'a FrameCounter,
    /// Set once a close was sent or received: later data frames are discarded, until this deadline.
    closing: Option<Instant>,
    /// The peer's close frame arrived.
    peer_closed: bool,
}

impl Reader<'_> {
    fn start_close(&mut self, code: CloseCode, reason: &str) {
        self.client.close(code, reason);
        self.closing
            .get_or_insert_with(|| Instant::now() + self.server.node().config.close_timeout);
    }

    fn reject(&mut self, code: CloseCode, reason: &str) {
        bump(&self.server.node().stats.invalid_frames);
        tracing::trace!(target: "ws_core::rejection", client_id = %self.client.id(), code = code.as_u16(), reason, "closing");
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
        bump(&self.server.node().stats.rate_limit_closes);
        self.start_close(close::POLICY_VIOLATION, "rate limit exceeded");
    }
}

pub(super) async fn run(stream: &mut Ws, client: &Client, continuations: &FrameCounter) -> ReadEnd {
    let server = client.server();
    let config = &server.node().config;
    let mut reader = Reader {
        server: &server,
        client,
        dispatcher: Dispatcher::new(&server),
        limiter: RateLimiter::new(
            config.message_rate_limit,
            config.message_burst_size,
            std::time::Instant::now(),
        ),
        continuations,
        closing: None,
        peer_closed: false,
    };
    let mut pipeline = Pipeline::new(&server, client);
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
            () = client.member().aborted(), if !reader.peer_closed => return ReadEnd::Aborted,
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
                input = Some(read_failed(&mut reader, &err));
                continue;
            }
        };
        reader.receive(&mut pipeline, msg);
    }
}

impl Reader<'_> {
    /// A frame as the protocol layer hands it over.
    fn receive(&mut self, pipeline: &mut Pipeline<'_>, msg: WsMessage) {
        match msg {
            WsMessage::Close(_) => {
                // The protocol layer has queued our reply; the next read flushes it and ends the stream.
                self.peer_closed = true;
                let timeout = self.server.node().config.close_timeout;
                self.closing.get_or_insert_with(|| Instant::now() + timeout);
            }
            WsMessage::Pong(_) => {
                self.client.member().record_pong();
                // Unsolicited pongs are frames like any other: they take a token.
                if self.closing.is_none() && !self.admit() {
                    self.rate_limited();
                }
            }
            WsMessage::Ping(_) => {
                if self.closing.is_none() && !self.admit() {
                    self.rate_limited();
                }
            }
            WsMessage::Frame(_) => {}
            WsMessage::Text(text) => self.data(pipeline, Data::Text(text)),
            WsMessage::Binary(data) => self.data(pipeline, Data::Binary(data)),
        }
    }

    /// A data frame: counted, discarded while closing, rate-limited, then dispatched.
    fn data(&mut self, pipeline: &mut Pipeline<'_>, data: Data) {
        bump(&self.server.node().stats.messages_received);
        if self.closing.is_some() {
            return;
        }
        if !self.admit_message() {
            self.dispatcher.answer_rate_limited(self.client, &data);
            self.rate_limited();
            return;
        }
        if let Err(refusal) = self
            .dispatcher
            .dispatch(self.server, self.client, pipeline, data)
        {
            if refusal.invalid {
                self.reject(refusal.code, refusal.reason);
            } else {
                self.start_close(refusal.code, refusal.reason);
            }
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

fn read_failed(reader: &mut Reader<'_>, err: &WsError) -> ReadEnd {
    if reader.peer_closed || reader.closing.is_some() {
        return ReadEnd::Failed;
    }
    let (code, reason) = match err {
        WsError::Io(err) if MessageTimeout::is(err) => {
            (close::POLICY_VIOLATION, "message not completed in time")
        }
        WsError::Io(err) if let Some(inflate) = InflateError::of(err) => inflate.close(),
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
