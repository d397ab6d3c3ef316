//! Lifecycle hooks: code that runs when a client connects, disconnects, fails, or sends an unknown type.
//!
//! `on_connect` runs after the client is registered and before its first frame is read, so a welcome
//! message it sends is the first thing the client receives. `on_disconnect` runs after the connection has
//! ended but while the client's group memberships are still readable; the server then removes the client
//! from every group and from the registry. Hooks registered several times run in registration order.

use std::sync::Arc;

use crate::client::Client;
use crate::error::Error;
use crate::handler::BoxFuture;

pub(crate) type ClientHook = Arc<dyn Fn(Client) -> BoxFuture<()> + Send + Sync>;
pub(crate) type ErrorHook = Arc<dyn Fn(&Client, &Error) + Send + Sync>;
pub(crate) type UnknownTypeHook = Arc<dyn Fn(&Client, &str) + Send + Sync>;

#[derive(Default, Clone)]
pub(crate) struct Hooks {
    pub(crate) on_connect: Vec<ClientHook>,
    pub(crate) on_disconnect: Vec<ClientHook>,
    pub(crate) on_error: Vec<ErrorHook>,
    pub(crate) on_unknown_type: Vec<UnknownTypeHook>,
}

impl Hooks {
    pub(crate) fn error(&self, client: &Client, err: &Error) {
        tracing::debug!(target: "ws_core::handler", client_id = %client.id(), error = %err, "handler error");
        for hook in &self.on_error {
            hook(client, err);
        }
    }

    pub(crate) fn unknown_type(&self, client: &Client, kind: &str) {
        tracing::trace!(target: "ws_core::rejection", client_id = %client.id(), kind, "unknown type");
        for hook in &self.on_unknown_type {
            hook(client, kind);
        }
    }
}
