use ws_core::{
    Client, ClientId, Config, Error, Extension, RequestId, Server, State, on, ws_messages,
};

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

// Any order, payload in the middle, no return value.
#[on(Inbound::Chat)]
async fn chat(client: Client, msg: inbound::Chat, server: Server) {
    let text = msg.text;
    server.broadcast(Outbound::Chat { text }.sent_by(client.id()));
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
async fn echo(inbound::Echo(text): inbound::Echo, Extension(User(name)): Extension<User>, id: RequestId) -> Result<String, Error> {
    Ok(format!("{name}:{text}:{:?}", id.0))
}

fn main() {
    let _builder = Server::builder(Config::default())
        .with_state(Db)
        .handle(chat)
        .handle(count)
        .handle(echo);
}
