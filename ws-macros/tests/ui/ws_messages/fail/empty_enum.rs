use ws_core::ws_messages;

#[ws_messages]
pub enum Inbound {}

fn main() {}
