use ws_core::ws_messages;

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
    #[ws(rename = "chat")]
    Talk { text: String },
}

fn main() {}
