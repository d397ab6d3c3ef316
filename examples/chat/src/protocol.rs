//! The chat protocol: every message type, in both directions.

use ws_core::{payload, ws_messages};

/// What clients send.
#[ws_messages]
#[derive(Debug, Clone)]
pub(crate) enum Inbound {
    /// A message to everyone, or to one room.
    Chat { text: String, room: Option<String> },
    /// Join a room.
    #[ws(reply = RoomJoined)]
    Join { room: String },
    /// Leave a room.
    #[ws(reply = RoomLeft)]
    Leave { room: String },
    /// A direct message to one client.
    Dm { to: String, text: String },
    /// Who am I? (a request)
    #[ws(reply = WhoAmI)]
    Whoami,
    /// Purge everything (admins only; a request).
    #[ws(rename = "admin:purge", reply = Purged)]
    AdminPurge,
}

/// What the server sends.
#[ws_messages(outbound)]
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// Sent once, right after connecting.
    Welcome { client_id: String, message: String },
    /// A chat message, relayed with `from`.
    Chat {
        text: String,
        user: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A direct message, relayed with `from`.
    Dm { text: String, user: String },
}

/// Reply to `join`.
#[payload]
#[derive(Debug, Clone)]
pub(crate) struct RoomJoined {
    pub(crate) room: String,
    /// False when the client already was in the room.
    pub(crate) joined: bool,
}

/// Reply to `leave`.
#[payload]
#[derive(Debug, Clone)]
pub(crate) struct RoomLeft {
    pub(crate) room: String,
    /// False when the client was not in the room.
    pub(crate) left: bool,
}

/// Reply to `whoami`.
#[payload]
#[derive(Debug, Clone)]
pub(crate) struct WhoAmI {
    pub(crate) client_id: String,
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
}

/// Reply to `admin:purge`.
#[payload]
#[derive(Debug, Clone)]
pub(crate) struct Purged {
    pub(crate) purged: bool,
}
