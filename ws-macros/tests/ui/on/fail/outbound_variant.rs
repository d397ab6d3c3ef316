use ws_core::{on, ws_messages};

#[ws_messages(outbound)]
pub enum Outbound {
    Welcome,
}

#[on(Outbound::Welcome)]
async fn welcome() {}

fn main() {}
