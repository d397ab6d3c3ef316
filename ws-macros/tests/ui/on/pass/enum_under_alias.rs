// The enum under an alias, and the payload type through an aliased module.
mod protocol {
    #[ws_core::ws_messages]
    pub enum ToServer {
        Clear,
        #[ws(reply = usize)]
        Stroke { points: Vec<u32> },
    }
}

use protocol::ToServer as Wb;
use protocol::to_server as wb;
use ws_core::{Client, Config, Server, on};

#[on(Wb::Clear)]
async fn clear(_client: Client) {}

#[on(wb::Stroke)]
async fn stroke(msg: wb::Stroke) -> usize {
    msg.points.len()
}

fn main() {
    let _ = Server::builder(Config::default()).handle(clear).handle(stroke);
}
