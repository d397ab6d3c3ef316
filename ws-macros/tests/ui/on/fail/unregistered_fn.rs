use ws_core::{Client, Config, Server};

async fn chat(_client: Client) {}

fn main() {
    let _ = Server::builder(Config::default()).handle(chat);
}
