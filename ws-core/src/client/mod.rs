//! `Client`: a handle to one connected client.
//!
//! A `Client` is cheap to clone and safe to keep: after the client disconnects, sends fail with
//! [`SendError::Disconnected`] instead of panicking. Every send is non-blocking: it puts bytes on the client's bounded
//! [send queue](crate::config) and returns; a client whose queue is full is dropped as a slow consumer.

pub(crate) mod id;

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use self::id::ClientId;
use crate::close::CloseCode;
use crate::error::{Error, SendError};
use crate::member::Member;
use crate::message::{IntoFrame, OutboundMessages, Variant};
use crate::recipients::Recipients;
use crate::server::Server;

/// A handle to one connected client.
#[derive(Clone)]
pub struct Client {
    member: Member,
    server: Server,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", self.id())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(member: Member, server: Server) -> Self {
        Self { member, server }
    }

    /// The client's id.
    pub fn id(&self) -> &ClientId {
        self.member.id()
    }

    /// The user its authenticator named ([`ClientData::user`](crate::auth::ClientData::user)).
    pub fn user(&self) -> Option<&str> {
        self.member.user()
    }

    /// Time left before its credential expires, as a refresh last moved it; `None` when it does not
    /// expire (see [`session`](crate::session)).
    pub fn expires_in(&self) -> Option<std::time::Duration> {
        self.member.session().and_then(|s| s.expires_in())
    }

    /// The server this client is connected to.
    pub fn server(&self) -> Server {
        self.server.clone()
    }

    /// What delivery knows of this client.
    pub(crate) fn member(&self) -> &Member {
        &self.member
    }

    /// Whether the client is still connected (false from the moment its disconnection starts).
    pub fn is_connected(&self) -> bool {
        self.member.is_connected()
    }

    /// Sends a message to this client: a value of an outbound message set, a [`Message`](crate::protocol::Message) or a [`Frame`](crate::protocol::Frame)
    /// (for example [`Frame::envelope`](crate::protocol::Frame::envelope), [`Frame::error`](crate::protocol::Frame::error), or [`Frame::text`](crate::protocol::Frame::text) in raw mode).
    ///
    /// The frame is queued and the call returns at once.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when the client has disconnected; [`SendError::SlowConsumer`] when its
    /// send queue passed its bounds, in which case the client is being dropped.
    pub fn send(&self, msg: impl IntoFrame) -> Result<(), SendError> {
        self.member.send(msg)
    }

    /// The other members of `group`, on every node: `client.to("room").send(msg)` reaches everybody in
    /// the room but this client. See [`recipients`](crate::recipients).
    pub fn to<'a>(&'a self, group: &'a str) -> Recipients<'a> {
        Recipients::group(self.server.node(), group).except(self.id())
    }

    /// Every other client, on every node.
    pub fn broadcast(&self) -> Recipients<'_> {
        Recipients::all(self.server.node()).except(self.id())
    }

    /// Sends a request to this client and waits for its answer: the client replies with
    /// `{"type": "$reply", "id", "data"}` (decoded as the variant's reply type) or `{"type": "$error", ...}`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ws_core::{Client, Error, payload, ws_messages};
    ///
    /// #[payload]
    /// pub struct Confirmed { pub ok: bool }
    ///
    /// #[ws_messages(outbound)]
    /// pub enum Outbound {
    ///     #[ws(reply = Confirmed)]
    ///     Confirm { question: String },
    /// }
    ///
    /// async fn ask(client: &Client) -> Result<bool, Error> {
    ///     let question = outbound::Confirm { question: "delete?".into() };
    ///     Ok(client.request(question, Duration::from_secs(10)).await?.ok)
    /// }
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    ///
    /// `timeout` without an answer in time, `not_found` when the client disconnects first,
    /// `limit_exceeded` past `max_pending_requests`, `invalid_data` when the answer does not fit the reply
    /// type, or the error the client answered with.
    pub async fn request<P>(&self, payload: P, timeout: Duration) -> Result<P::Reply, Error>
    where
        P: Variant,
        P::Set: OutboundMessages,
        P::Reply: DeserializeOwned,
    {
        let raw = self.member.request_raw(P::NAME, &payload, timeout).await?;
        serde_json::from_str(raw.get())
            .map_err(|e| Error::invalid_data(format!("reply to {:?}: {e}", P::NAME)))
    }

    /// Sends an untyped request `{"type": kind, "data": data, "id"}` and waits for the answer's `data`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn request_json<T: Serialize + ?Sized>(
        &self,
        kind: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let raw = self.member.request_raw(kind, data, timeout).await?;
        Ok(serde_json::from_str(raw.get())?)
    }

    /// Stores a metadata value under `key` (any serializable value, kept as JSON).
    ///
    /// # Errors
    ///
    /// `internal` if the value cannot be represented as JSON; `limit_exceeded` if the client's metadata
    /// would hold more than `max_metadata_bytes` (each key's length plus its value's JSON length), in which
    /// case nothing is stored.
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Serialize) -> Result<(), Error> {
        self.member.set_metadata(key, value)
    }

    /// A metadata value.
    pub fn get_metadata(&self, key: &str) -> Option<Value> {
        self.member.get_metadata(key)
    }

    /// Removes a metadata value and returns it.
    pub fn remove_metadata(&self, key: &str) -> Option<Value> {
        self.member.remove_metadata(key)
    }

    /// Stores a typed value on the client, one per type (like `http::Extensions`).
    ///
    /// ```no_run
    /// # fn f(client: ws_core::Client) {
    /// #[derive(Clone)]
    /// struct User { name: String }
    /// client.insert_extension(User { name: "ann".into() });
    /// assert_eq!(client.extension::<User>().unwrap().name, "ann");
    /// # }
    /// ```
    pub fn insert_extension<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.member.insert_extension(value);
    }

    /// A copy of the typed value stored with [`Client::insert_extension`].
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.member.extension()
    }

    /// Whether the client belongs to `group`.
    pub fn is_in_group(&self, group: &str) -> bool {
        self.server.node().backplane.is_in_group(group, self.id())
    }

    /// The groups the client belongs to, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.server.node().backplane.client_groups(self.id())
    }

    /// Adds the client to `group`; `Ok(false)` if it already was a member.
    ///
    /// # Errors
    ///
    /// `limit_exceeded` when the client already belongs to `max_groups_per_client` groups or the name is
    /// longer than `max_group_name_bytes`; `not_found` once the client has disconnected.
    pub fn join(&self, group: &str) -> Result<bool, Error> {
        self.server.node().backplane.join(group, &self.member)
    }

    /// Removes the client from `group`; returns whether it was a member.
    pub fn leave(&self, group: &str) -> bool {
        self.server.node().backplane.leave(group, self.id())
    }

    /// Removes the client from all its groups and returns them, sorted. Runs by itself on disconnect.
    pub fn leave_all(&self) -> Vec<String> {
        self.server.node().backplane.leave_all(self.id())
    }

    /// Starts a clean close: frames already queued are written, then a close frame with `code` and
    /// `reason`, then the server waits (at most `close_timeout`) for the client's close frame.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) {
        self.member.close(code, reason);
    }
}
