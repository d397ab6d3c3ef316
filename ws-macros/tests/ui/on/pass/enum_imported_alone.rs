// Only the enum is imported: the payload module is not needed to name the variant.
mod protocol {
    #[ws_core::ws_messages]
    pub enum ToServer {
        Clear,
        Stroke { points: Vec<u32> },
    }
}

use protocol::ToServer;
use ws_core::{Client, Config, Server, on};

#[on(ToServer::Clear)]
async fn clear(_client: Client) {}

fn main() {
    let _ = Server::builder(Config::default()).handle(clear);
}
