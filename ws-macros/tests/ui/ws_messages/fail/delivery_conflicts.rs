use ws_core::ws_messages;

#[ws_messages(outbound)]
pub enum Outbound {
    #[ws(volatile, latest)]
    Cursor { x: u32 },
    #[ws(volatile, reply = bool)]
    Confirm,
}

fn main() {}
