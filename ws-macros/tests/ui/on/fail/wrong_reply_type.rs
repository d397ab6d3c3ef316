use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    #[ws(reply = u32)]
    Count,
}

#[on(Inbound::Count)]
async fn count() -> String {
    "many".to_owned()
}

fn main() {}
