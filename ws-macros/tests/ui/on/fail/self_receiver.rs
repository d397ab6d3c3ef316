use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Ping,
}

struct Handlers;

impl Handlers {
    #[on(Inbound::Ping)]
    async fn ping(&self) {}
}

fn main() {}
