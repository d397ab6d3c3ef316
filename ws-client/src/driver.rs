//! The task that owns the socket: connects, writes the queue, reads and routes frames, and connects
//! again after a close its policy retries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc;
use ws_protocol::Error;
use ws_protocol::error::ErrorCode;

use crate::client::{Envelope, Incoming, Shared, State, decide, lock};
use crate::error::{ClientError, CloseInfo};
use crate::policy::{Backoff, CloseDecision};
use crate::runtime;
use crate::stream::StreamShared;
use crate::transport::{Received, Socket, Transport};

/// What waits to be written.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame; a request's carries its id (dropped if the request was given up), an answer to a server
    /// request the connection it belongs to (dropped on another).
    Frame {
        text: String,
        request: Option<u64>,
        connection: Option<u64>,
    },
    /// The application closes the client.
    Close,
}

impl Outgoing {
    pub(crate) fn frame(text: String, request: Option<u64>) -> Self {
        Self::Frame {
            text,
            request,
            connection: None,
        }
    }
}

pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) headers: crate::client::Headers,
    pub(crate) backoff: Backoff,
    pub(crate) stable_after: Duration,
}

/// The application's URL naming the protocol's fingerprint, and asking for refusals in-band where the
/// transport cannot read an HTTP answer (the browser's): either way a refusal reaches the policy as the
/// close 3000 + status, as the TS SDK gets it.
pub(crate) fn address(url: &str, fingerprint: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let refusals = if Socket::IN_BAND_REFUSALS {
        "&ws_refusal=close"
    } else {
        ""
    };
    let named = format!("{base}{separator}ws_protocol={fingerprint}{refusals}");
    match fragment {
        Some(fragment) => format!("{named}#{fragment}"),
        None => named,
    }
}

/// How one connection ended.
enum Ended {
    /// The socket closed, with this close.
    Lost(CloseInfo),
    /// The application closed the client.
    Closed,
}

pub(crate) async fn run<O: DeserializeOwned + runtime::MaybeSend + 'static>(
    settings: Settings,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<Outgoing>,
    replies: mpsc::Sender<Outgoing>,
    delivered: mpsc::Sender<Incoming<O>>,
) {
    let mut attempt = 0;
    let mut connection = 0;
    loop {
        let close = match Socket::connect(&settings.url, &settings.headers).await {
            Ok(ws) => {
                connection += 1;
                shared.state.send_replace(State::Open);
                let opened = runtime::now_ms();
                let link = Link {
                    shared: &shared,
                    replies: &replies,
                    delivered: &delivered,
                    connection,
                };
                let ended = link.serve(ws, &mut queue).await;
                if runtime::now_ms() - opened >= settings.stable_after.as_secs_f64() * 1000.0 {
                    attempt = 0;
                }
                // Memberships end with their connection: so do the presence lists.
                let emptied = lock(&shared.presence).reset();
                for change in emptied {
                    link.deliver(Incoming::Presence(change));
                }
                match ended {
                    Ended::Closed => return,
                    Ended::Lost(close) => close,
                }
            }
            Err(close) => close,
        };
        shared.fail_pending(|| ClientError::Lost(close.clone()));
        lock(&shared.streams).lost(&close);
        let decision = decide(&close, &settings.backoff, attempt);
        if decision == CloseDecision::Stop || matches!(*shared.state.borrow(), State::Closed(_)) {
            lock(&shared.streams).close(|| ClientError::Closed(Some(close.clone())));
            shared.state.send_if_modified(|state| {
                let open = !matches!(state, State::Closed(_));
                if open {
                    *state = State::Closed(Some(close.clone()));
                }
                open
            });
            return;
        }
        shared.state.send_replace(State::Connecting);
        let delay = settings.backoff.delay(attempt, decision);
        attempt += 1;
        // The application may close while the client waits.
        let closed = async {
            let mut state = shared.state.subscribe();
            let _ = state.wait_for(|s| matches!(s, State::Closed(_))).await;
        };
        tokio::select! {
            () = runtime::sleep(delay) => {}
            () = closed => return,
        }
    }
}

/// One connection's view of the client.
struct Link<'a, O> {
    shared: &'a Shared,
    replies: &'a mpsc::Sender<Outgoing>,
    delivered: &'a mpsc::Sender<Incoming<O>>,
    connection: u64,
}

impl<O: DeserializeOwned + runtime::MaybeSend + 'static> Link<'_, O> {
    async fn serve(&self, mut ws: Socket, queue: &mut mpsc::Receiver<Outgoing>) -> Ended {
        // First, where the client was in each group with history, so joining again recovers.
        let positions = lock(&self.shared.positions).frame();
        if let Some(frame) = positions
            && let Err(close) = ws.send(frame).await
        {
            return Ended::Lost(close);
        }
        // Then the streams this client was reading, from the last item it got.
        let resumes = lock(&self.shared.streams).resumes();
        for frame in resumes {
            if let Err(close) = ws.send(frame).await {
                return Ended::Lost(close);
            }
        }
        // A stream whose reader is behind by a full buffer: the socket is not read until it catches up, so
        // the server's producer waits (its window fills) instead of this client's memory growing.
        let mut full: Option<Arc<StreamShared>> = None;
        loop {
            if let Some(stream) = full.take() {
                let held = stream.clone();
                let space = held.space();
                tokio::pin!(space);
                space.as_mut().enable();
                if stream.is_full() {
                    full = Some(stream);
                    tokio::select! {
                        outgoing = queue.recv() => {
                            if let Some(ended) = self.write(&mut ws, outgoing).await {
                                return ended;
                            }
                        }
                        () = space => {}
                    }
                    continue;
                }
            }
            tokio::select! {
                outgoing = queue.recv() => {
                    if let Some(ended) = self.write(&mut ws, outgoing).await {
                        return ended;
                    }
                }
                read = ws.receive() => match read {
                    Received::Text(text) => full = self.receive(&text),
                    Received::Closed(close) => return Ended::Lost(close),
                },
            }
        }
    }

    /// Writes what the application queued; `Some` when that ends the connection.
    async fn write(&self, ws: &mut Socket, outgoing: Option<Outgoing>) -> Option<Ended> {
        match outgoing {
            Some(Outgoing::Frame {
                text,
                request,
                connection,
            }) => {
                let given_up =
                    request.is_some_and(|id| !lock(&self.shared.pending).contains_key(&id));
                let stale = connection.is_some_and(|c| c != self.connection);
                if given_up || stale {
                    return None;
                }
                ws.send(text).await.err().map(Ended::Lost)
            }
            Some(Outgoing::Close) | None => {
                ws.close().await;
                Some(Ended::Closed)
            }
        }
    }

    /// Routes one text frame: an answer to its request, a server request to its handler, a message or
    /// an unanswered `$error` to the application. Returns the stream whose buffer a chunk filled.
    fn receive(&self, text: &str) -> Option<Arc<StreamShared>> {
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text) else {
            tracing::debug!(target: "ws_client", "a frame that is not an envelope was skipped");
            return None;
        };
        let data = envelope.data.map_or("null", |d| d.get());
        if let Some(pos) = &envelope.pos
            && !lock(&self.shared.positions).advance(pos)
        {
            return None;
        }
        match (envelope.kind, envelope.id) {
            ("$reply", Some(id)) => self.answer(id, Ok(data)),
            ("$error", Some(id)) if lock(&self.shared.streams).contains(id) => {
                lock(&self.shared.streams).failed(id, server_error(data));
            }
            ("$error", Some(id)) => self.answer(id, Err(server_error(data))),
            ("$stream", Some(id)) => {
                #[derive(serde::Deserialize)]
                struct Opened {
                    stream: String,
                }
                if let Ok(opened) = serde_json::from_str::<Opened>(data) {
                    lock(&self.shared.streams).opened(id, opened.stream);
                }
            }
            ("$chunk", Some(id)) => {
                let seq = envelope.seq?;
                return lock(&self.shared.streams).chunk(id, seq, data);
            }
            ("$end", Some(id)) => lock(&self.shared.streams).ended(id),
            ("$error", None) => self.deliver(Incoming::Error(server_error(data))),
            ("$position", None) => self.positioned(data),
            ("$presence_state", None) | ("$presence_diff", None) => {
                let state = envelope.kind == "$presence_state";
                let change = lock(&self.shared.presence).apply(state, data);
                if let Some(change) = change {
                    self.deliver(Incoming::Presence(change));
                }
            }
            ("$left", None) => self.left(data),
            (kind, _) if kind.starts_with('$') => {}
            (kind, Some(id)) => self.server_request(kind, id, data),
            (_, None) => match serde_json::from_str::<O>(text) {
                Ok(message) => self.deliver(Incoming::Message {
                    message,
                    from: envelope.from,
                }),
                Err(e) => {
                    tracing::debug!(target: "ws_client", error = %e, "a message that does not fit its type was skipped")
                }
            },
        }
        None
    }

    /// A `$position`: the client's standing in a group it joined.
    fn positioned(&self, data: &str) {
        #[derive(serde::Deserialize)]
        struct Standing {
            group: String,
            epoch: Option<String>,
            offset: Option<u64>,
            recovered: Option<bool>,
            reason: Option<String>,
        }
        let Ok(standing) = serde_json::from_str::<Standing>(data) else {
            return;
        };
        if standing.recovered != Some(true) {
            let at = standing.epoch.as_deref().zip(standing.offset);
            lock(&self.shared.positions).restart(&standing.group, at);
        }
        self.deliver(Incoming::Recovery {
            group: standing.group,
            recovered: standing.recovered,
            reason: standing.reason,
        });
    }

    /// A `$left`: a membership the server ended (a session's grant ran out, or was withdrawn).
    fn left(&self, data: &str) {
        #[derive(serde::Deserialize)]
        struct Left {
            group: String,
            #[serde(default)]
            reason: String,
        }
        let Ok(left) = serde_json::from_str::<Left>(data) else {
            return;
        };
        let emptied = lock(&self.shared.presence).forget(&left.group);
        if let Some(change) = emptied {
            self.deliver(Incoming::Presence(change));
        }
        self.deliver(Incoming::Left {
            group: left.group,
            reason: left.reason,
        });
    }

    fn answer(&self, id: u64, answer: Result<&str, Error>) {
        let Some(waiting) = lock(&self.shared.pending).remove(&id) else {
            return;
        };
        let _ = waiting.send(answer.map(str::to_owned).map_err(ClientError::Server));
    }

    fn deliver(&self, incoming: Incoming<O>) {
        if self.delivered.try_send(incoming).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs the handler of a server request and queues its answer for this connection.
    fn server_request(&self, kind: &str, id: u64, data: &str) {
        let handler = lock(&self.shared.handlers).get(kind).cloned();
        let replies = self.replies.clone();
        let connection = self.connection;
        let answer = move |result: Result<serde_json::Value, Error>| {
            let frame = match result {
                Ok(data) => json!({"type": "$reply", "id": id, "data": data}),
                Err(e) => {
                    json!({"type": "$error", "id": id, "data": {"code": e.code().as_str(), "message": e.message()}})
                }
            };
            Outgoing::Frame {
                text: frame.to_string(),
                request: None,
                connection: Some(connection),
            }
        };
        let Some(handler) = handler else {
            let unknown = Error::new(ErrorCode::UnknownType, format!("no handler for {kind:?}"));
            let _ = replies.try_send(answer(Err(unknown)));
            return;
        };
        let running = handler(data);
        runtime::spawn(async move {
            let _ = replies.send(answer(running.await)).await;
        });
    }
}

fn server_error(data: &str) -> Error {
    #[derive(serde::Deserialize)]
    struct Body {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(data) {
        Ok(body) => Error::new(ErrorCode::from_wire(&body.code), body.message),
        Err(e) => Error::invalid_data(format!("malformed $error: {e}")),
    }
}
