//! The wire contract of a ws-core server, without the server: the traits `#[ws_messages]` implements,
//! the error codes of `$error` frames, delivery policies, client ids and the protocol's fingerprint.
//!
//! `ws-core` re-exports all of it under the same paths (`ws_core::message`, `ws_core::Error`, ...), so a
//! server needs only `ws-core`. Depend on this crate alone where the server cannot go: a crate of message
//! enums shared by a server and a client that runs in the browser (`ws-client` on `wasm32`), or any
//! program that speaks the protocol without serving it. It has no runtime and compiles for
//! `wasm32-unknown-unknown`.
//!
//! # Quick start
//!
//! A crate shared by the server and its clients declares the messages once; the macros re-exported here
//! generate code against this crate:
//!
//! ```
//! use ws_protocol::message::{Variant, WsMessages};
//! use ws_protocol::version::ProtocolVersion;
//! use ws_protocol::{payload, ws_messages};
//!
//! #[payload]
//! pub struct Joined {
//!     pub room: String,
//!     pub members: u32,
//! }
//!
//! #[ws_messages] // client → server
//! pub enum Inbound {
//!     #[ws(reply = Joined)]
//!     Join { room: String },
//!     Chat { room: String, text: String },
//! }
//!
//! #[ws_messages(outbound)] // server → client
//! pub enum Outbound {
//!     Chat { text: String, user: String },
//! }
//!
//! fn main() {
//!     let frame = serde_json::to_string(&Inbound::Chat { room: "rust".into(), text: "hi".into() });
//!     assert_eq!(frame.unwrap(), r#"{"type":"chat","data":{"room":"rust","text":"hi"}}"#);
//!     assert_eq!(<inbound::Join as Variant>::NAME, "join");
//!     assert_eq!(Outbound::NAMES, ["chat"]);
//!     // The fingerprint a client names when it connects, the same the server computes.
//!     let version = ProtocolVersion::new().messages::<Inbound>().messages::<Outbound>();
//!     assert_eq!(version.fingerprint().len(), 16);
//! }
//! ```
//!
//! The server's crate uses the same enums with `ws_core::on`; a Rust client with `ws_client::Client`.

#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

pub mod delivery;
pub mod error;
mod id;
pub mod message;
pub mod version;

pub use schemars;
pub use ts_rs;

/// Declares a typed message set (see `ws_core::ws_messages` for the attribute's whole syntax); code is
/// generated against `ws_protocol`, so this crate is the only dependency a crate of messages needs.
pub use ws_macros::protocol_ws_messages as ws_messages;

/// Makes a type usable in messages and replies: serde, ts-rs and schemars derives through `ws_protocol`.
pub use ws_macros::protocol_payload as payload;

pub use crate::error::{Error, Result, SendError};
pub use crate::id::ClientId;

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[ws_messages]` generates; not a stable API.
    pub use crate::message::{VariantNamed, decode_payload, unknown_type, variant_hash};
    pub use schemars;
    pub use serde;
    pub use ts_rs;
}
