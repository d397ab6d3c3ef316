use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Ping,
}

#[on(Inbound::Ping)]
fn ping() {}

fn main() {}
