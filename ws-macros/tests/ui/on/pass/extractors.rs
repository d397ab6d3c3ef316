use ws_core::extract::{Extension, RequestId, State};
use ws_core::{Client, ClientId, Config, Error, Server, on, ws_messages};

#[ws_messages]
pub enum Inbound {
    Chat { text: String },
    #[ws(reply = u32)]
    Count,
    #[ws(reply = String)]
    Echo(String),
}

#[ws_messages(outbound)]
pub enum Outbound {
    Chat { text: String },
}

#[derive(Clone)]
struct Db;

#[derive(Clone)]
struct User(String);

// Extractors first, the payload last, no return value.
#[on(Inbound::Chat)]
async fn chat(client: Client, server: Server, msg: inbound::Chat) {
    let text = msg.text;
    server.all().send(Outbound::Chat { text }.sent_by(client.id()));
}

// No payload argument; the reply type is returned directly.
#[on(Inbound::Count)]
async fn count(State(_db): State<Db>, _id: ClientId) -> u32 {
    // A local variable may share a handler's name.
    let chat = 1;
    chat
}

// Result of the reply type; destructuring patterns; a handler with a path to the enum.
#[on(self::Inbound::Echo)]
async fn echo(Extension(User(name)): Extension<User>, id: RequestId, inbound::Echo(text): inbound::Echo) -> Result<String, Error> {
    Ok(format!("{name}:{text}:{:?}", id.0))
}

fn main() {
    let _builder = Server::builder(Config::default())
        .with_state(Db)
        .handle(chat)
        .handle(count)
        .handle(echo);
}
