//! Protocol versions: a fingerprint of the wire contract, so a server can tell a client built for
//! another version of its messages.
//!
//! # Guarantees
//!
//! - **One name for one contract.** [`ProtocolVersion::fingerprint`] is 16 hex digits computed from every
//!   message of the sets given (wire name, direction, whether it is a request, and the JSON Schema of its
//!   payload and reply, nested types included), independent of the order the sets are given in and of how
//!   the build orders JSON keys. ws-codegen writes the same fingerprint into the generated SDK
//!   (`PROTOCOL_FINGERPRINT`), which sends it as the `ws_protocol` query parameter of every connection.
//! - **An outdated client is told, once, first.** With [`ServerBuilder::protocol_version`], a client that
//!   sends another fingerprint gets, before any other frame, `$error` `{code: "protocol_mismatch",
//!   message}` without `id`, and stays connected; with [`ProtocolVersion::close_others`] it is then closed
//!   with [`close::PROTOCOL_MISMATCH`] (3409, which the SDK does not reconnect after). A client that sends
//!   none (a tool, another library) is served as before.
//!
//! ```
//! use ws_core::version::ProtocolVersion;
//! use ws_core::{Config, Server, ws_messages};
//!
//! #[ws_messages]
//! pub enum Inbound {
//!     Join { room: String },
//! }
//!
//! #[ws_messages(outbound)]
//! pub enum Outbound {
//!     Joined { room: String },
//! }
//!
//! fn main() -> Result<(), ws_core::config::ConfigError> {
//!     let version = ProtocolVersion::new().messages::<Inbound>().messages::<Outbound>();
//!     assert_eq!(version.fingerprint().len(), 16);
//!     let server = Server::builder(Config::default()).protocol_version(version).build()?;
//!     # let _ = server;
//!     Ok(())
//! }
//! ```
//!
//! [`ServerBuilder::protocol_version`]: crate::ServerBuilder::protocol_version
//! [`close::PROTOCOL_MISMATCH`]: crate::close::PROTOCOL_MISMATCH

use axum::http::Uri;

pub use ws_protocol::version::*;

use crate::close;
use crate::error::{Error, ErrorCode};
use crate::member::Member;
use crate::protocol;

/// The protocol a server speaks, as built: its fingerprint, computed once.
pub(crate) struct ServerProtocol {
    fingerprint: String,
    close_others: bool,
}

impl ServerProtocol {
    pub(crate) fn new(version: &ProtocolVersion) -> Self {
        Self {
            fingerprint: version.fingerprint(),
            close_others: version.closes_others(),
        }
    }

    /// Tells a client that named another fingerprint (in the upgrade request's query) so, first, and
    /// closes it when the server closes such clients.
    pub(crate) fn greet(&self, client: &Member, uri: &Uri) {
        let named = crate::auth::query_parameter(uri, QUERY_PARAMETER);
        let Some(theirs) = named.filter(|theirs| *theirs != self.fingerprint) else {
            return;
        };
        let message = format!(
            "this client was built for protocol {theirs:?}; the server speaks {:?}: load the current client",
            self.fingerprint
        );
        let err = Error::new(ErrorCode::ProtocolMismatch, message);
        let _ = client.send(protocol::error_frame(None, &err));
        if self.close_others {
            client.close(close::PROTOCOL_MISMATCH, "protocol mismatch");
        }
    }
}
