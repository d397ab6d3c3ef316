//! The chat demo as a library: its protocol (the message enums the TypeScript SDK is generated from) and
//! the server with every handler registered. `src/main.rs` adds the command line and the HTTP routes.

mod handlers;
pub mod protocol;
pub mod tokens;

pub use crate::handlers::{AssistantPace, build, builder, builder_with_tokens};
