use ws_core::ws_messages;

#[ws_messages]
pub enum Inbound {
    #[ws(volatile)]
    Typing,
    #[ws(latest = "x")]
    Cursor { x: u32 },
}

fn main() {}
