//! A typed Rust client of ws-core servers, typed by the server's own message enums: no generated code.
//!
//! What it guarantees:
//!
//! - **Types end to end.** `send` takes the client → server enum, `request` a variant's payload and
//!   returns its declared reply type, `next` gives the server → client enum, `handle` answers the
//!   server's requests with the reply type the server expects. A wrong message or reply type does not
//!   compile.
//! - **The same wire as the TypeScript SDK.** Every connection names the protocol's fingerprint
//!   (`ws_protocol`); a handshake refused with HTTP status S is the close 3000 + S with the body's first
//!   line as reason, as the SDK is told; `$error` answers are [`ClientError::Server`] with the server's
//!   code and message.
//! - **Reconnection with the same policy.** After a close its policy retries ([`close_policy`]) the client
//!   connects again with jittered backoff; a final close (3409, 34xx, 4xxx, 1002, ...) ends it and every
//!   later call fails at once with [`ClientError::Closed`], naming the close. Requests in flight when a
//!   connection is lost fail with [`ClientError::Lost`]; frames sent meanwhile wait in a bounded queue.
//! - **Recovery.** The client keeps its position in each group with history and sends it first on every
//!   connection (`$positions`); joining such a group again after a lost connection replays what it
//!   missed, once each, in order ([`Incoming::Recovery`] says whether it could). The application joins
//!   again, as it joined first (joins belong to a connection).
//! - **Streams.** [`Client::stream`] sends a request of a `#[ws(stream = T)]` variant and returns its
//!   items as a [`Streaming<T>`]; after a lost connection the client resumes it (`$resume` with the last
//!   item's `seq`), so each item comes once, in order; dropping it cancels the stream on the server. A
//!   reader 1 024 items behind holds back the connection's reading, so the server's producer waits.
//! - **Presence.** [`Client::presence`] is a group's member list, kept from the server's frames as the
//!   TypeScript SDK keeps it; each change is an [`Incoming::Presence`], and the lists empty when a
//!   connection is lost.
//! - **Native and in the browser.** Natively it runs on tokio with tokio-tungstenite; compiled for
//!   `wasm32-unknown-unknown` it uses the page's `WebSocket` and event loop, asks for refusals in-band
//!   (`ws_refusal=close`, so a refusal is still the close 3000 + status), and a [`handle`](Client::handle)
//!   future need not be `Send` ([`MaybeSend`]). A browser crate cannot depend on `ws-core`: declare the
//!   enums in a crate that depends on `ws-protocol` alone (`use ws_protocol::{payload, ws_messages};`)
//!   and share it with the server. [`testing`] is native only.
//! - **Bounded.** The queue of frames to write (`max_queue`, 1 024), the requests waiting
//!   (1 000), the messages waiting for [`Client::next`] (`message_buffer`, 1 024; past it new ones are
//!   dropped and counted, so a client that only makes requests never stalls its connection).
//!
//! ```no_run
//! use ws_client::{Client, Incoming};
//! use ws_core::{payload, ws_messages};
//!
//! #[payload]
//! pub struct Joined { pub room: String }
//!
//! #[ws_messages]
//! pub enum Inbound {
//!     Chat { text: String },
//!     #[ws(reply = Joined)]
//!     Join { room: String },
//! }
//!
//! #[ws_messages(outbound)]
//! pub enum Outbound {
//!     Chat { text: String, user: String },
//! }
//!
//! # async fn run() -> Result<(), ws_client::ClientError> {
//! let client = Client::<Inbound, Outbound>::connect("ws://127.0.0.1:6001/ws?token=ann").await?;
//! let joined: Joined = client.request(inbound::Join { room: "rust".into() }).await?;
//! client.send(Inbound::Chat { text: format!("hello #{}", joined.room) })?;
//! while let Some(Incoming::Message { message: Outbound::Chat { text, user }, .. }) = client.next().await {
//!     println!("{user}: {text}");
//! }
//! # Ok(()) }
//! # fn main() {}
//! ```

mod client;
mod driver;
mod error;
mod policy;
mod positions;
mod presence;
mod runtime;
mod stream;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod transport;

pub use client::{Client, ClientBuilder, Incoming, State};
pub use error::{ClientError, CloseInfo};
/// The `http` crate's header types, for [`ClientBuilder::header`].
#[cfg(not(target_arch = "wasm32"))]
pub use http;
pub use policy::{Backoff, CloseDecision, close_policy};
pub use presence::{Member, Presence, PresenceChange};
pub use runtime::MaybeSend;
pub use stream::Streaming;
