use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Ping,
}

#[on(Inbound::Ping)]
async fn ping<T: Default>() {}

fn main() {}
