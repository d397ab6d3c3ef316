use chat::protocol::{Inbound, Outbound, inbound};
use ws_client::Client;

async fn join(client: Client<Inbound, Outbound>) {
    // `join` is answered with `RoomJoined`, not a string.
    let _: String = client.request(inbound::Join { room: "r".into() }).await.unwrap();
}

fn main() {}
