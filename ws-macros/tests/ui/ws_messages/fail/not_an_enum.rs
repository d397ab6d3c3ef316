use ws_core::ws_messages;

#[ws_messages]
pub struct Inbound {
    text: String,
}

fn main() {}
