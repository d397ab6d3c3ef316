use ws_core::{Client, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
}

fn reply(client: &Client) {
    let _ = client.send(Inbound::Chat { text: "hi".into() });
}

fn main() {}
