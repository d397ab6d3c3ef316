use ws_core::ws_messages;

#[ws_messages]
#[serde(rename_all = "camelCase")]
pub enum Inbound {
    #[serde(rename = "talk")]
    Chat,
}

fn main() {}
