//! A typed real-time WebSocket server on tokio and axum: rooms, broadcast, request/reply, hard limits and
//! live stats, with answers for every kind of bad input.
//!
//! # Quick start
//!
//! Declare the messages of each direction as enums, write one `async fn` per inbound message, register
//! them, serve:
//!
//! ```no_run
//! use ws_core::auth::ClientData;
//! use ws_core::extract::Extension;
//! use ws_core::{Client, Config, Error, Server, on, ws_messages};
//!
//! #[ws_messages] // client → server
//! pub enum Inbound {
//!     Join { room: String },
//!     Chat { text: String, room: String },
//!     #[ws(reply = Vec<String>)]
//!     Rooms,
//! }
//!
//! #[ws_messages(outbound)] // server → client
//! pub enum Outbound {
//!     Chat { text: String, user: String },
//! }
//!
//! #[on(Inbound::Join)]
//! async fn join(client: Client, msg: inbound::Join) -> Result<(), Error> {
//!     client.join(&msg.room)?;
//!     Ok(())
//! }
//!
//! /// Who a client is: stored on it by the authenticator, handed to handlers that ask for it.
//! #[derive(Clone)]
//! struct User(String);
//!
//! #[on(Inbound::Chat)]
//! async fn chat(client: Client, Extension(User(user)): Extension<User>, msg: inbound::Chat) {
//!     let out = Outbound::Chat { text: msg.text, user };
//!     client.server().to(&msg.room).send(out.sent_by(client.id()));
//! }
//!
//! #[on(Inbound::Rooms)]
//! async fn rooms(client: Client) -> Vec<String> {
//!     client.groups()
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = Server::builder(Config::default().port(6001))
//!         .auth(|req| async move {
//!             let user = req.query("token").filter(|t| !t.is_empty());
//!             let user = user.ok_or_else(|| Error::unauthorized("missing token"))?;
//!             Ok::<_, Error>(ClientData::new().extension(User(user.clone())).span_user(user))
//!         })
//!         .handle(join)
//!         .handle(chat)
//!         .handle(rooms)
//!         .build()?;
//!     server.serve().await?; // ws://127.0.0.1:6001/ws?token=ann
//!     Ok(())
//! }
//! ```
//!
//! A handler receives its message already decoded into the variant's payload type (`inbound::Join`),
//! after any of the extractors listed in [`extract`]; what it returns answers requests with the
//! variant's reply type. The function stays a function: `rooms(client).await` calls it as written. A
//! payload of the wrong type, an unknown variant, a payload taken twice, a second handler for one
//! variant, or sending a client → server message are compile errors (see [`ws_messages`] and [`on`]).
//!
//! Underneath, untyped handlers work on the raw envelope:
//! `Server::builder(config).on("chat", |client: Client, msg: Message| async move { ... })`.
//!
//! # Where things are
//!
//! The root holds what every application uses: [`Server`], [`Client`], [`ClientId`], [`Config`],
//! [`Error`], [`SendError`] and the macros. The rest is in modules:
//!
//! | module | what it holds |
//! |---|---|
//! | [`recipients`] | picking who gets a message: `server.to("room").except(id).send(msg)` |
//! | [`extract`] | handler arguments: `State`, `Extension`, `RequestId`, your own extractors |
//! | [`handler`] | untyped handlers, replies, middleware |
//! | [`message`] | the traits `#[ws_messages]` implements |
//! | [`protocol`] | the envelope, [`Frame`](protocol::Frame), [`Message`](protocol::Message), system frame names |
//! | [`delivery`] | volatile and latest delivery |
//! | [`presence`] | who is in a group, as a state on join and batched diffs |
//! | [`history`] | a group's recent frames, numbered, replayed to a client that comes back |
//! | [`version`] | the protocol's fingerprint, and what a client built for another version is told |
//! | [`auth`] | the authenticator's request and what it attaches to a client |
//! | [`config`], [`close`], [`error`] | limits and their defaults, close codes, error codes |
//! | [`backplane`] | one node or many: the `Backplane` trait, memory and Redis |
//! | [`stats`] | live counters |
//! | [`metrics`] | the counters, gauges and histograms for Prometheus |
//! | [`raw`] | raw mode, without the envelope |
//!
//! # Wire format
//!
//! One text frame is one JSON object: `{"type": "chat", "data": {...}, "target"?: "...", "from"?: "...",
//! "id"?: 7}`. `type` routes the frame to its handler. `from` is only ever written by the server. A frame with
//! an `id` (an integer below 2^53) is a request and gets exactly one answer: `{"type": "$reply", "id": 7,
//! "data": ...}` or `{"type": "$error", "id": 7, "data": {"code": "...", "message": "..."}}`. The whole
//! contract, with every answer to bad input, is in the repository's `docs/protocol.md`.
//!
//! # Answers to bad input
//!
//! | situation | answer |
//! |---|---|
//! | not a WebSocket upgrade | HTTP 426 (400 for a malformed key) |
//! | `Origin` not allowed | HTTP 403 |
//! | authenticator error | the error's HTTP answer: 401 for [`Error::unauthorized`], 403 for [`Error::forbidden`], … |
//! | `max_connections` reached, or stopping | HTTP 503 |
//! | frame larger than `max_message_size` | close 1009 |
//! | binary frame | close 1003 |
//! | text that is not a JSON object with a string `type` (or with a bad `id`) | close 1007 |
//! | over the rate limit | close 1008 "rate limit exceeded" |
//! | send queue past `send_queue_max_bytes`, or its socket refusing writes for `send_queue_max_lag` | client dropped (close 1008, or a reset if its socket cannot take it) |
//! | too many frames waiting for the client's handler | `$error` `overloaded`, the connection stays |
//! | no pong within `pong_timeout` / a write blocked past `write_timeout` | connection closed |
//! | unknown `type` | dropped and counted; a request gets `$error` `unknown_type` |
//! | `data` not what the handler expects | `$error` `invalid_data` |
//! | handler error | `on_error`; a request gets `$error` |
//! | handler panic | `on_error`, close 1011; everybody else goes on |
//! | [`Server::stop`] | close 1001 to every client after its queue drains |
//!
//! See [`config`] for every limit and its default, and [`close`] for the close codes.
//!
//! # Handlers, the socket, and slow clients
//!
//! A connection is read while its handlers run: `$ping`, the client's answers to the server's requests,
//! control frames and the limits never wait for a handler, while one client's handlers run one at a time
//! in arrival order. What is sent to a client waits in its send queue, bounded by lag and bytes, so a burst
//! a client catches up with never drops it; outbound variants may be `#[ws(volatile)]` or `#[ws(latest)]`
//! for what is worthless late (see [`delivery`]).
//!
//! # More than one node
//!
//! Broadcasts, group sends, direct sends and membership go through a
//! [`Backplane`](backplane::Backplane). The default, [`MemoryBackplane`](backplane::MemoryBackplane),
//! serves one process. With the `redis` feature, `RedisBackplane` links every node that uses the same
//! Redis (and prefix) into one set of clients and groups: install it with
//! `Server::builder(config).backplane(|local| RedisBackplane::start(local, RedisConfig::new(url)?))`.
//! Handlers do not change; methods named `local_*` see this node only. A node that loses Redis keeps
//! serving its own clients and reconnects by itself; `Server::stats().backplane` says whether it is
//! linked and how many other nodes it sees.

#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

mod admission;
pub mod auth;
pub mod backplane;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_support;
mod client;
pub mod close;
pub mod compression;
pub mod config;
mod connection;
pub mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_support;
mod group;
pub mod handler;
pub mod history;
mod hooks;
pub mod member;
pub mod message;
pub mod metrics;
mod node;
pub mod presence;
pub mod protocol;
mod rate_limit;
pub mod raw;
pub mod recipients;
mod registry;
mod send_queue;
mod server;
pub mod session;
pub mod stats;
pub mod stream;
mod sync;
mod typed;
pub mod version;

/// The JSON Schema generator payload types implement (`#[payload]` derives it).
pub use schemars;
/// The TypeScript generator payload types implement (`#[payload]` derives it).
pub use ts_rs;
pub use ws_macros::{on, payload, ws_messages};
/// Delivery policies and error codes, shared with clients through `ws-protocol`.
pub use ws_protocol::{delivery, error};

pub use crate::client::{Client, ClientId};
pub use crate::config::Config;
pub use crate::error::{Error, Result, SendError};
pub use crate::server::Server;
pub use crate::server::builder::ServerBuilder;
pub use crate::server::upgrade::handle_connection;

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The guide's Rust examples (`docs/guide`), compiled and run as doctests.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../docs/guide/concepts.md")]
    pub struct Concepts;
    #[doc = include_str!("../../docs/guide/limits.md")]
    pub struct Limits;
    #[doc = include_str!("../../docs/guide/delivery.md")]
    pub struct Delivery;
    #[cfg(feature = "redis")]
    #[doc = include_str!("../../docs/guide/scaling.md")]
    pub struct Scaling;
    #[doc = include_str!("../../docs/guide/sdk.md")]
    pub struct Sdk;
    #[doc = include_str!("../../docs/guide/sessions.md")]
    pub struct Sessions;
    #[doc = include_str!("../../docs/guide/testing.md")]
    pub struct Testing;
    #[doc = include_str!("../../docs/guide/observability.md")]
    pub struct Observability;
}

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[ws_messages]` and `#[on]` generate; not a stable API.
    pub use crate::typed::{assert_argument, assert_inbound, assert_last_argument, assert_reply};
    pub use ws_protocol::__private::*;
}
