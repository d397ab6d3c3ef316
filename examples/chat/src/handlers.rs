//! What each message does (the wire contract is in the README's chat section).

use std::time::Duration;

use ws_core::auth::{AuthRequest, ClientData};
use ws_core::config::ConfigError;
use ws_core::extract::{Extension, State};
use ws_core::stream::Chunks;
use ws_core::version::ProtocolVersion;
use ws_core::{Client, Config, Error, Server, ServerBuilder, on};

use crate::protocol::{
    Answer, Inbound, Member, Outbound, Purged, RoomJoined, RoomLeft, WhoAmI, Word, inbound,
    outbound,
};

/// How long a client has to answer another client's question.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest user name (the token), in characters.
pub(crate) const MAX_USER_CHARS: usize = 32;

/// Longest text of a chat message, direct message or question, in characters: one sender's message is
/// copied into every recipient's queue, so its size is bounded well below `max_message_size`.
const MAX_TEXT_CHARS: usize = 2000;

/// `invalid_data`, reported even without a request, when `text` is longer than `max` characters.
pub(crate) fn bounded(what: &str, text: &str, max: usize) -> Result<(), Error> {
    if text.chars().count() > max {
        return Err(Error::invalid_data(format!("{what} longer than {max} characters")).reported());
    }
    Ok(())
}

/// Who a connection is, as its token says: stored on the client by the authenticator, and handed to
/// handlers as `Extension<User>`.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The name others see (the token).
    pub(crate) name: String,
    /// Whether the user may run admin commands (the token `admin`).
    pub(crate) admin: bool,
}

impl User {
    /// The user of a client the authenticator let in.
    fn of(client: &Client) -> Self {
        client.extension::<Self>().unwrap_or(Self {
            name: String::new(),
            admin: false,
        })
    }
}

async fn authenticate(req: AuthRequest) -> Result<ClientData, Error> {
    let token = req.query("token").filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| Error::unauthorized("a non-empty ?token= is required"))?;
    bounded("the user name", &token, MAX_USER_CHARS)?;
    let user = User {
        admin: token == "admin",
        name: token.clone(),
    };
    Ok(ClientData::new().extension(user).user(token))
}

#[on(Inbound::Chat)]
async fn chat(
    client: Client,
    Extension(user): Extension<User>,
    msg: inbound::Chat,
) -> Result<(), Error> {
    bounded("text", &msg.text, MAX_TEXT_CHARS)?;
    let out = Outbound::Chat {
        text: msg.text,
        user: user.name,
        room: msg.room.clone(),
    }
    .sent_by(client.id());
    let server = client.server();
    match &msg.room {
        Some(room) => server.to(room).send(out),
        None => server.all().send(out),
    }
    Ok(())
}

#[on(Inbound::Typing)]
async fn typing(client: Client, Extension(user): Extension<User>, msg: inbound::Typing) {
    let out = Outbound::Typing {
        user: user.name,
        room: msg.room.clone(),
    }
    .sent_by(client.id());
    match &msg.room {
        Some(room) => client.to(room).send(out),
        None => client.broadcast().send(out),
    }
}

#[on(Inbound::Join)]
async fn join(client: Client, msg: inbound::Join) -> Result<RoomJoined, Error> {
    let joined = client.join(&msg.room)?;
    Ok(RoomJoined {
        room: msg.room,
        joined,
    })
}

#[on(Inbound::Leave)]
async fn leave(client: Client, msg: inbound::Leave) -> RoomLeft {
    let left = client.leave(&msg.room);
    RoomLeft {
        room: msg.room,
        left,
    }
}

#[on(Inbound::Dm)]
async fn dm(
    client: Client,
    server: Server,
    Extension(user): Extension<User>,
    msg: inbound::Dm,
) -> Result<(), Error> {
    bounded("text", &msg.text, MAX_TEXT_CHARS)?;
    let out = Outbound::Dm {
        text: msg.text,
        user: user.name,
    }
    .sent_by(client.id());
    // `reported`: the sender hears of an unknown target even when it did not send a request.
    server
        .send_to_client(&msg.to, out)
        .map_err(|e| Error::from(e).reported())
}

#[on(Inbound::Ask)]
async fn ask(
    server: Server,
    Extension(user): Extension<User>,
    msg: inbound::Ask,
) -> Result<Answer, Error> {
    bounded("the question", &msg.question, MAX_TEXT_CHARS)?;
    let target = server
        .local_client(&msg.to)
        .ok_or_else(|| Error::not_found(format!("no client {:?}", msg.to)))?;
    let question = outbound::Ask {
        question: msg.question,
        user: user.name,
    };
    target.request(question, ANSWER_TIMEOUT).await
}

#[on(Inbound::Whoami)]
async fn whoami(client: Client, Extension(user): Extension<User>) -> WhoAmI {
    WhoAmI {
        client_id: client.id().to_string(),
        user: user.name,
        groups: client.groups(),
    }
}

#[on(Inbound::AdminPurge)]
async fn purge(Extension(user): Extension<User>) -> Result<Purged, Error> {
    if !user.admin {
        return Err(Error::forbidden("admin:purge needs the admin plan"));
    }
    Ok(Purged { purged: true })
}

/// How the assistant answers: how many words, how far apart (a stand-in for a model's tokens).
#[derive(Debug, Clone, Copy)]
pub struct AssistantPace {
    /// Words in an answer.
    pub words: u32,
    /// The pause after each word.
    pub delay: Duration,
}

impl Default for AssistantPace {
    fn default() -> Self {
        Self {
            words: 60,
            delay: Duration::from_millis(60),
        }
    }
}

/// The words the assistant answers `prompt` with: always the same for the same prompt and length.
fn answer_words(prompt: &str, words: u32) -> impl Iterator<Item = String> {
    const TEXT: &str = "a typed stream carries each word to the page as it is made and a page that \
                        loses its connection picks the answer up where it broke with nothing lost and \
                        nothing twice";
    let topic: String = prompt
        .split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ");
    let opening = format!("You asked about \u{201c}{topic}\u{201d}: here is what I know.");
    let text = opening
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
        .chain(TEXT.split_whitespace().map(str::to_owned).cycle());
    text.take(words as usize)
        .enumerate()
        .map(|(i, word)| if i == 0 { word } else { format!(" {word}") })
}

#[on(Inbound::Assistant)]
async fn assistant(
    State(pace): State<AssistantPace>,
    mut words: Chunks<Word>,
    msg: inbound::Assistant,
) -> Result<(), Error> {
    if msg.prompt.trim().is_empty() {
        return Err(Error::invalid_data("ask the assistant something"));
    }
    for (index, text) in (0..).zip(answer_words(&msg.prompt, pace.words)) {
        words.send(Word { text, index }).await?;
        tokio::time::sleep(pace.delay).await;
    }
    Ok(())
}

/// The chat server with every handler registered.
pub fn build(config: Config) -> Result<Server, ConfigError> {
    builder(config).build()
}

/// The chat server with expiring tokens (`--token-ttl`): a connection opens with a token of
/// [`Tokens`](crate::tokens::Tokens), refreshes it in-band, and is closed with 4001 when it lets one expire.
pub fn builder_with_tokens(config: Config, tokens: crate::tokens::Tokens) -> ServerBuilder {
    let refresh = tokens.clone();
    handlers(Server::builder(config))
        .auth(move |req: AuthRequest| {
            let data = req
                .query("token")
                .ok_or_else(|| Error::unauthorized("a ?token= is required"))
                .and_then(|token| tokens.check(&token));
            async move { data }
        })
        .on_refresh(move |_: Client, token: String| {
            let data = refresh.check(&token);
            async move { data }
        })
}

/// The chat server, ready for more settings (such as a backplane) before it is built.
pub fn builder(config: Config) -> ServerBuilder {
    handlers(Server::builder(config)).auth(authenticate)
}

/// Everything but the authenticator.
fn handlers(builder: ServerBuilder) -> ServerBuilder {
    builder
        // A page built for other messages is told so at once (`$error` `protocol_mismatch`).
        .protocol_version(
            ProtocolVersion::new()
                .messages::<Inbound>()
                .messages::<Outbound>(),
        )
        // Every room has a member list; each member shows its user name.
        .presence(ws_core::presence::Presence::new().meta(|client| Member {
            user: User::of(client).name,
        }))
        .on_connect(|client| async move {
            let _ = client.send(Outbound::Welcome {
                client_id: client.id().to_string(),
                message: "connected".to_owned(),
            });
        })
        .handle(chat)
        .handle(typing)
        .handle(join)
        .handle(leave)
        .handle(dm)
        .handle(ask)
        .handle(whoami)
        .handle(purge)
        .handle(assistant)
        .with_state(AssistantPace::default())
}
