//! The task that owns the socket: connects, writes the queue, reads and routes frames, and connects
//! again after a close its policy retries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{Envelope, Incoming, Shared, State, decide, lock};
use crate::error::{ClientError, CloseInfo};
use crate::policy::{Backoff, CloseDecision};

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
    pub(crate) backoff: Backoff,
    pub(crate) stable_after: Duration,
}

/// The application's URL naming the protocol's fingerprint. Refusals stay HTTP answers, which this
/// client reads (unlike a browser): [`refusal`] turns them into the close codes the TS SDK gets.
pub(crate) fn address(url: &str, fingerprint: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let named = format!("{base}{separator}ws_protocol={fingerprint}");
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

pub(crate) async fn run<O: DeserializeOwned + Send + 'static>(
    settings: Settings,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<Outgoing>,
    replies: mpsc::Sender<Outgoing>,
    delivered: mpsc::Sender<Incoming<O>>,
) {
    let mut attempt = 0;
    let mut connection = 0;
    loop {
        let close = match tokio_tungstenite::connect_async(settings.url.as_str()).await {
            Ok((ws, _)) => {
                connection += 1;
                shared.state.send_replace(State::Open);
                let opened = Instant::now();
                let link = Link {
                    shared: &shared,
                    replies: &replies,
                    delivered: &delivered,
                    connection,
                };
                let ended = link.serve(ws, &mut queue).await;
                if opened.elapsed() >= settings.stable_after {
                    attempt = 0;
                }
                match ended {
                    Ended::Closed => return,
                    Ended::Lost(close) => close,
                }
            }
            Err(e) => refusal(e),
        };
        shared.fail_pending(|| ClientError::Lost(close.clone()));
        let decision = decide(&close, &settings.backoff, attempt);
        if decision == CloseDecision::Stop || matches!(*shared.state.borrow(), State::Closed(_)) {
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
            () = tokio::time::sleep(delay) => {}
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl<O: DeserializeOwned + Send + 'static> Link<'_, O> {
    async fn serve(&self, mut ws: Socket, queue: &mut mpsc::Receiver<Outgoing>) -> Ended {
        // First, where the client was in each group with history, so joining again recovers.
        let positions = lock(&self.shared.positions).frame();
        if let Some(frame) = positions
            && let Err(e) = ws.send(WsMessage::text(frame)).await
        {
            return Ended::Lost(CloseInfo {
                code: 1006,
                reason: e.to_string(),
            });
        }
        loop {
            tokio::select! {
                outgoing = queue.recv() => match outgoing {
                    Some(Outgoing::Frame { text, request, connection }) => {
                        let given_up = request.is_some_and(|id| !lock(&self.shared.pending).contains_key(&id));
                        let stale = connection.is_some_and(|c| c != self.connection);
                        if given_up || stale {
                            continue;
                        }
                        if let Err(e) = ws.send(WsMessage::text(text)).await {
                            return Ended::Lost(CloseInfo { code: 1006, reason: e.to_string() });
                        }
                    }
                    Some(Outgoing::Close) | None => {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            ws.close(Some(frame)).await?;
                            while ws.next().await.is_some() {}
                            Ok::<_, tokio_tungstenite::tungstenite::Error>(())
                        })
                        .await;
                        return Ended::Closed;
                    }
                },
                read = ws.next() => match read {
                    Some(Ok(WsMessage::Text(text))) => self.receive(text.as_str()),
                    Some(Ok(WsMessage::Close(frame))) => {
                        let close = frame.map_or(CloseInfo { code: 1005, reason: String::new() }, |f| CloseInfo {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        });
                        // Answer the close, so the server's side ends cleanly.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while ws.next().await.is_some() {}
                        })
                        .await;
                        return Ended::Lost(close);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ended::Lost(CloseInfo { code: 1006, reason: e.to_string() }),
                    None => return Ended::Lost(CloseInfo { code: 1006, reason: "connection lost".to_owned() }),
                },
            }
        }
    }

    /// Routes one text frame: an answer to its request, a server request to its handler, a message or
    /// an unanswered `$error` to the application.
    fn receive(&self, text: &str) {
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text) else {
            tracing::debug!(target: "ws_client", "a frame that is not an envelope was skipped");
            return;
        };
        let data = envelope.data.map_or("null", |d| d.get());
        if let Some(pos) = &envelope.pos
            && !lock(&self.shared.positions).advance(pos)
        {
            return;
        }
        match (envelope.kind, envelope.id) {
            ("$reply", Some(id)) => self.answer(id, Ok(data)),
            ("$error", Some(id)) => self.answer(id, Err(server_error(data))),
            ("$error", None) => self.deliver(Incoming::Error(server_error(data))),
            ("$position", None) => self.positioned(data),
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

    fn answer(&self, id: u64, answer: Result<&str, ws_core::Error>) {
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
        let answer = move |result: Result<serde_json::Value, ws_core::Error>| {
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
            let unknown = ws_core::Error::new(
                ws_core::error::ErrorCode::UnknownType,
                format!("no handler for {kind:?}"),
            );
            let _ = replies.try_send(answer(Err(unknown)));
            return;
        };
        let running = handler(data);
        tokio::spawn(async move {
            let _ = replies.send(answer(running.await)).await;
        });
    }
}

/// A failed handshake as a close: HTTP status S as 3000 + S with the body's first line (what a
/// `ws_refusal=close` client is told), anything else as 1006.
fn refusal(error: tokio_tungstenite::tungstenite::Error) -> CloseInfo {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            let reason = String::from_utf8_lossy(body)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            CloseInfo {
                code: 3000 + response.status().as_u16(),
                reason,
            }
        }
        other => CloseInfo {
            code: 1006,
            reason: other.to_string(),
        },
    }
}

fn server_error(data: &str) -> ws_core::Error {
    #[derive(serde::Deserialize)]
    struct Body {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(data) {
        Ok(body) => ws_core::Error::new(
            ws_core::error::ErrorCode::from_wire(&body.code),
            body.message,
        ),
        Err(e) => ws_core::Error::invalid_data(format!("malformed $error: {e}")),
    }
}
