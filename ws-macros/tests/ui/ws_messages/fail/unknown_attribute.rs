use ws_core::ws_messages;

#[ws_messages(sideways)]
pub enum Inbound {
    #[ws(renam = "x")]
    Chat,
}

fn main() {}
