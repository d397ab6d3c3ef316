use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
    Join { room: String },
}

#[on(Inbound::Chat)]
async fn chat(msg: inbound::Join) {
    let _ = msg.room;
}

fn main() {}
