use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
}

#[on(Inbound::Chatt)]
async fn chat() {}

fn main() {}
