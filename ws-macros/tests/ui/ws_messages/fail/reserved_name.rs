use ws_core::ws_messages;

#[ws_messages]
pub enum Inbound {
    #[ws(rename = "$reply")]
    Sneaky,
}

fn main() {}
