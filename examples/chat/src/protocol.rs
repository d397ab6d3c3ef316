//! The chat protocol: every message type, in both directions.

use ws_core::{payload, ws_messages};

/// What clients send.
#[ws_messages]
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A message to everyone, or to one room.
    Chat {
        /// The text.
        text: String,
        /// The room to send to; everyone when absent.
        room: Option<String>,
    },
    /// Join a room.
    #[ws(reply = RoomJoined)]
    Join {
        /// The room.
        room: String,
    },
    /// Leave a room.
    #[ws(reply = RoomLeft)]
    Leave {
        /// The room.
        room: String,
    },
    /// A direct message to one client.
    Dm {
        /// The recipient's client id.
        to: String,
        /// The text.
        text: String,
    },
    /// Ask another client a question and get its answer (a request; the server asks the other client with
    /// a request of its own).
    #[ws(reply = Answer)]
    Ask {
        /// The client to ask.
        to: String,
        /// The question.
        question: String,
    },
    /// The sender is typing, in one room or in everyone-chat.
    Typing {
        /// The room; everyone-chat when absent.
        room: Option<String>,
    },
    /// Who am I? (a request)
    #[ws(reply = WhoAmI)]
    Whoami,
    /// Purge everything (admins only; a request).
    #[ws(rename = "admin:purge", reply = Purged)]
    AdminPurge,
    /// Ask the assistant: its answer comes back word by word (a stream), resumed after a lost connection.
    #[ws(stream = Word)]
    Assistant {
        /// What to ask.
        prompt: String,
    },
}

/// What the server sends.
#[ws_messages(outbound)]
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Sent once, right after connecting.
    Welcome {
        /// The new client's id.
        client_id: String,
        /// Always `connected`.
        message: String,
    },
    /// A chat message, relayed with `from`.
    Chat {
        /// The text.
        text: String,
        /// The sender's user name.
        user: String,
        /// The room it was sent to; absent for everyone-chat.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A direct message, relayed with `from`.
    Dm {
        /// The text.
        text: String,
        /// The sender's user name.
        user: String,
    },
    /// Someone else is typing. Volatile: worthless late, so a client that is behind does not get it.
    #[ws(volatile)]
    Typing {
        /// Who is typing.
        user: String,
        /// The room; absent for everyone-chat.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A question from another client: a request the client answers with an [`Answer`].
    #[ws(reply = Answer)]
    Ask {
        /// The question.
        question: String,
        /// Who asks.
        user: String,
    },
}

/// Reply to `ask`, in both directions.
#[payload]
#[derive(Debug, Clone)]
pub struct Answer {
    /// The answer.
    pub answer: String,
}

/// Reply to `join`.
#[payload]
#[derive(Debug, Clone)]
pub struct RoomJoined {
    /// The room.
    pub room: String,
    /// False when the client already was in the room.
    pub joined: bool,
}

/// Reply to `leave`.
#[payload]
#[derive(Debug, Clone)]
pub struct RoomLeft {
    /// The room.
    pub room: String,
    /// False when the client was not in the room.
    pub left: bool,
}

/// Reply to `whoami`.
#[payload]
#[derive(Debug, Clone)]
pub struct WhoAmI {
    /// The client's id.
    pub client_id: String,
    /// The user name (the token).
    pub user: String,
    /// The rooms the client is in, sorted.
    pub groups: Vec<String>,
}

/// Reply to `admin:purge`.
#[payload]
#[derive(Debug, Clone)]
pub struct Purged {
    /// Always true.
    pub purged: bool,
}

/// One word of the assistant's answer.
#[payload]
#[derive(Debug, Clone)]
pub struct Word {
    /// The word, with the space before it when it is not the first.
    pub text: String,
    /// Its place in the answer, from 0.
    pub index: u32,
}

/// What each member of a room shows the others in the room's presence list.
#[payload]
#[derive(Debug, Clone)]
pub struct Member {
    /// The member's user name.
    pub user: String,
}
