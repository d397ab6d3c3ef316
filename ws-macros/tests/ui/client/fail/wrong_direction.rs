use chat::protocol::{Inbound, Outbound, outbound};
use ws_client::Client;

fn send(client: Client<Inbound, Outbound>) {
    // A server → client message cannot be sent, nor asked as a request.
    let _ = client.send(Outbound::Welcome { client_id: "c".into(), message: "m".into() });
    let _ = client.request(outbound::Ask { question: "q".into(), user: "u".into() });
}

fn main() {}
