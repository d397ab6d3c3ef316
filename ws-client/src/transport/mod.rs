//! The socket, behind one small trait: tokio-tungstenite natively, the browser's `WebSocket` on
//! `wasm32`. The driver is written once against [`Transport`]; the build picks the backend.

use crate::client::Headers;
use crate::error::CloseInfo;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(not(target_arch = "wasm32"))]
mod native;

#[cfg(target_arch = "wasm32")]
pub(crate) use browser::Socket;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::Socket;

/// What a socket read.
#[derive(Debug)]
pub(crate) enum Received {
    /// A text frame.
    Text(String),
    /// The connection ended: the peer's close, or 1006 and the cause.
    Closed(CloseInfo),
}

/// One WebSocket connection. Every method is cancel-safe where the driver races it against its queue.
pub(crate) trait Transport: Sized {
    /// Whether a refused handshake reaches this transport only in-band, as a close with 3000 + the
    /// HTTP status (browsers see nothing of a refused upgrade's response): such a transport asks the
    /// server for it with `ws_refusal=close`. A transport that reads the HTTP answer turns it into the
    /// same close itself.
    const IN_BAND_REFUSALS: bool;

    /// Opens a connection with the handshake's extra `headers` (native only: a browser sends its own);
    /// a refusal is the close a client is told (3000 + status, the body's first line).
    async fn connect(url: &str, headers: &Headers) -> Result<Self, CloseInfo>;

    /// Writes one text frame.
    async fn send(&mut self, text: String) -> Result<(), CloseInfo>;

    /// The next frame, or how the connection ended (after the closing handshake, within a second).
    async fn receive(&mut self) -> Received;

    /// Closes with 1000 and waits, at most a second, for the server's answer.
    async fn close(&mut self);
}
