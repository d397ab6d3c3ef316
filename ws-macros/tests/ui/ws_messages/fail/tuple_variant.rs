use ws_core::ws_messages;

#[ws_messages]
pub enum Inbound {
    Move(i32, i32),
}

fn main() {}
