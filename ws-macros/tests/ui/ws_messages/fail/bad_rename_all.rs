use ws_core::ws_messages;

#[ws_messages(rename_all = "Title Case")]
pub enum Inbound {
    Chat,
}

fn main() {}
