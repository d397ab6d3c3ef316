use ws_core::ws_messages;

#[ws_messages(outbound)]
pub enum Outbound {
    #[ws(stream = String)]
    Tokens,
}

#[ws_messages]
pub enum Inbound {
    #[ws(reply = u32, stream = String)]
    Both,
}

fn main() {}
