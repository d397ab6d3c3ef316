// `crate = path` names ws-core where it is re-exported under another name.
pub use ws_core as framework;

#[framework::ws_messages(crate = crate::framework)]
pub enum Inbound {
    Chat { text: String },
}

#[framework::on(Inbound::Chat, crate = crate::framework)]
async fn chat(_client: framework::Client, _msg: inbound::Chat) {}

fn main() {
    let _ = framework::Server::builder(framework::Config::default()).handle(chat);
}
