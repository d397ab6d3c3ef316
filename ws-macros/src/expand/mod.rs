//! Code generation: every generated item goes through `::ws_core` paths, and impls sit in `const _` blocks.

mod handler;
mod messages;
#[cfg(test)]
mod tests;

pub(crate) use self::handler::handler;
pub(crate) use self::messages::message_set;
