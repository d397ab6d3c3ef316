use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
}

#[on(Inbound::Chat)]
async fn chat(_first: inbound::Chat, _second: inbound::Chat) {}

fn main() {}
