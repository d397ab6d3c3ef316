use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
}

#[on(Inbound::Chat)]
async fn chat(_msg: inbound::Chat) {}

#[on(Inbound::Chat)]
async fn chat_again(_msg: inbound::Chat) {}

fn main() {}
