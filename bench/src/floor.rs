//! What the floor servers share: the benchmark protocol over any WebSocket layer, with one group, a bounded
//! queue per connection, frames serialized once and shared, and writes batched (feed every queued frame,
//! flush once). `bare_axum` hands it tungstenite's sockets (through axum), `bench/peers/yawc` yawc's, so the
//! two differ by their frame layer alone; the peers outside the workspace include this file by its path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc;

/// Frames waiting for one connection's writer at most.
const QUEUE: usize = 4096;
/// Frames fed per flush at most.
const BATCH: usize = 64;

/// The group, and the queues of its members; `T` is the frame text as the layer's writer takes it.
#[derive(Debug)]
pub struct Room<T> {
    members: Mutex<HashMap<u64, mpsc::Sender<T>>>,
    next_id: AtomicU64,
}

impl<T> Default for Room<T> {
    fn default() -> Self {
        Self {
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<T: Clone + From<String> + Send + 'static> Room<T> {
    /// A new connection, whose queue a task of its own writes to `sink`, each text made a frame by `frame`.
    pub fn member<M, S>(&self, sink: S, frame: fn(T) -> M) -> Member<T>
    where
        S: Sink<M> + Unpin + Send + 'static,
        M: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        Member {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            writer: tokio::spawn(write(rx, sink, frame)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<T>>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection of a [`Room`].
#[derive(Debug)]
pub struct Member<T> {
    id: u64,
    tx: mpsc::Sender<T>,
    writer: tokio::task::JoinHandle<()>,
}

impl<T: Clone + From<String> + Send + 'static> Member<T> {
    /// Does what one text frame asks; `false` when the connection should end.
    pub async fn apply(&self, room: &Room<T>, text: &str) -> bool {
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text) else {
            return false;
        };
        match frame["type"].as_str() {
            Some("join") => {
                room.lock().insert(self.id, self.tx.clone());
            }
            Some(kind @ ("publish" | "cursor" | "cursor_plain")) => {
                let out = T::from(format!(r#"{{"type":"{kind}","data":{}}}"#, frame["data"]));
                for member in room.lock().values() {
                    let _ = member.try_send(out.clone());
                }
            }
            Some("echo") => {
                let reply = format!(
                    r#"{{"type":"$reply","id":{},"data":{}}}"#,
                    frame["id"], frame["data"]
                );
                return self.tx.send(T::from(reply)).await.is_ok();
            }
            _ => {}
        }
        true
    }

    /// The connection is gone: out of the room, and its writer done with what was queued.
    pub async fn leave(self, room: &Room<T>) {
        room.lock().remove(&self.id);
        drop(self.tx);
        let _ = self.writer.await;
    }
}

/// The writer: drains the queue in batches into `sink`, each text made a frame by `frame`.
async fn write<T, M, S>(mut queue: mpsc::Receiver<T>, mut sink: S, frame: fn(T) -> M)
where
    S: Sink<M> + Unpin,
{
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        for text in batch.drain(..) {
            if sink.feed(frame(text)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Serves `upgrade` at `/ws`, with a new room as its state, on 127.0.0.1 and the port given as the first
/// argument (default: a free one), with `TCP_NODELAY`, after printing `listening on http://HOST:PORT`.
pub async fn serve<T, H, X>(upgrade: H) -> std::io::Result<()>
where
    T: Send + 'static,
    H: axum::handler::Handler<X, std::sync::Arc<Room<T>>>,
    X: 'static,
{
    use axum::serve::ListenerExt;
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let app = axum::Router::new()
        .route("/ws", axum::routing::get(upgrade))
        .with_state(std::sync::Arc::new(Room::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
