// Message enums from another crate (the chat example's protocol), by enum path, by the payload type
// imported alone, and with the payload module under an alias.
use chat::protocol::{Inbound, inbound::Whoami, inbound as chat_in};
use ws_core::{Client, Config, Server, on};

#[on(chat::protocol::Inbound::Leave)]
async fn leave(_client: Client) -> chat::protocol::RoomLeft {
    chat::protocol::RoomLeft { room: String::new(), left: false }
}

#[on(Inbound::Join)]
async fn join(msg: chat_in::Join) -> chat::protocol::RoomJoined {
    chat::protocol::RoomJoined { room: msg.room, joined: true }
}

#[on(Whoami)]
async fn whoami(client: Client) -> chat::protocol::WhoAmI {
    chat::protocol::WhoAmI { client_id: client.id().to_string(), user: String::new(), groups: Vec::new() }
}

fn main() {
    let _ = Server::builder(Config::default()).handle(leave).handle(join).handle(whoami);
}
