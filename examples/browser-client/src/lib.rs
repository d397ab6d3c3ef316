//! One crate of message enums, shared by a ws-core server (`src/main.rs`) and a page that talks to it with
//! the typed Rust client compiled to WebAssembly (`src/page.rs`).
//!
//! The enums depend on `ws-protocol` only — the wire contract without a runtime — so this crate compiles
//! for `wasm32-unknown-unknown`, where `ws-core` cannot go. The server registers handlers for the very
//! same types; the page sends and receives them with `ws_client::Client`.
//!
//! `scripts/wasm-test` builds the page with `wasm-bindgen`, starts the server, and checks in Chromium that
//! every typed path works over the browser's own WebSocket: a refusal, a request and its reply, a room
//! message, a request from the server answered by the page, an `$error`, a server-side cut followed by
//! a reconnection, a typed stream resumed across another cut, and a final close.

use ws_protocol::{payload, ws_messages};

#[cfg(target_arch = "wasm32")]
pub mod page;

/// The answer to a join.
#[payload]
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The room joined.
    pub room: String,
    /// The id of the connection that joined (a new one after a reconnection).
    pub id: String,
}

/// The page's answer to the server's question.
#[payload]
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmed {
    /// Yes or no.
    pub yes: bool,
    /// Who answered.
    pub by: String,
}

/// What the page sends.
#[ws_messages]
#[derive(Debug, Clone)]
pub enum Inbound {
    /// Join a room.
    #[ws(reply = Joined)]
    Join {
        /// The room.
        room: String,
    },
    /// Say something to a room.
    Shout {
        /// The room.
        room: String,
        /// The text.
        text: String,
    },
    /// Have the server ask this client `question` and reply with its answer.
    #[ws(reply = Confirmed)]
    AskMe {
        /// The question.
        question: String,
    },
    /// Something this client may not have: answered with `$error` `forbidden`.
    #[ws(reply = String)]
    Secret,
    /// Have the server close this connection (1001), as a restarting server would.
    Kick,
    /// The numbers 1 to `to`, as a stream, `delay_ms` apart.
    #[ws(stream = u32)]
    Count {
        /// The last number.
        to: u32,
        /// The pause after each.
        delay_ms: u64,
    },
}

/// What the server sends.
#[ws_messages(outbound)]
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Someone said something in a room.
    Shouted {
        /// The text.
        text: String,
        /// Who said it.
        user: String,
    },
    /// A question for the client, answered with its reply.
    #[ws(reply = Confirmed)]
    Confirm {
        /// The question.
        question: String,
    },
}
