//! The benchmark protocol, shared by every server under test and the load generator.
//!
//! Every peer speaks the same JSON envelope over a plain WebSocket at `/ws`:
//!
//! - `{"type": "join", "data": "<group>"}`: join a group (no answer);
//! - `{"type": "publish", "data": {...}}`: broadcast the frame's `data` to the group `bench` as
//!   `{"type": "publish", "data": {...}}` (the sender included when it is a member);
//! - `{"type": "echo", "data": ..., "id": N}`: answer `{"type": "$reply", "id": N, "data": ...}`;
//! - `{"type": "cursor" | "cursor_plain", "data": {...}}`: relayed to the group like `publish`, keeping its
//!   type (servers with delivery policies relay `cursor` as latest-value-wins per sender).
//!
//! Each server prints `listening on http://HOST:PORT` as its first line.

pub mod deflate;
pub mod floor;

use ws_core::{payload, ws_messages};

/// What `echo` carries and answers, for the typed Rust client (`loadgen reqrep-typed`).
#[payload]
#[derive(Debug, Clone, Copy)]
pub struct Count {
    /// The request's number.
    pub n: u64,
}

/// The benchmark's client → server messages the typed client sends.
#[ws_messages]
#[derive(Debug)]
pub enum BenchInbound {
    /// Answered with its own data.
    #[ws(reply = Count)]
    Echo {
        /// The request's number.
        n: u64,
    },
    /// Answered with a stream of `chunks` items, numbered from 1, each with `pad` bytes of text.
    #[ws(stream = Chunk)]
    Stream {
        /// Items in the stream.
        chunks: u64,
        /// Bytes of text in each.
        pad: usize,
    },
    /// Closes the sender's connection with 1001, as a restarting server would (its streams wait for a
    /// resume).
    Cut,
}

/// One item of a `stream`.
#[payload]
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The item's number, from 1.
    pub n: u64,
    /// Padding.
    pub text: String,
}

/// The benchmark's server → client messages (what `reqrep-typed` may get besides its replies).
#[ws_messages(outbound)]
#[derive(Debug)]
pub enum BenchOutbound {
    /// A fan-out frame's count.
    Publish(Count),
}

/// The group every fan-out subscriber joins.
pub const GROUP: &str = "bench";
