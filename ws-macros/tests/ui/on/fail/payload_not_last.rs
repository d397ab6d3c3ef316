use ws_core::{Client, on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
}

#[on(Inbound::Chat)]
async fn chat(_msg: inbound::Chat, _client: Client) {}

fn main() {}
