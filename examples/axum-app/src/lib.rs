//! An axum application that had users, a login and a REST API before it had real-time features, with a
//! ws-core server mounted on one route of its router.
//!
//! | route | needs | answer |
//! |---|---|---|
//! | `POST /login` | `{"user", "password"}` | `{"token", "expires_at"}`: an HS256 JWT (`sub` the user, `exp`), or 401 |
//! | `GET /api/me` | a bearer token | `{"user", "expires_at"}` |
//! | `GET /api/notes` | a bearer token | the notes, oldest first |
//! | `POST /api/notes` | a bearer token, `{"text"}` | 201 and the note; every WebSocket client gets `note_added` |
//! | `GET /ws` | a token: `Authorization: Bearer`, the `token` cookie or `?token=` | the WebSocket; 401 without a valid, unexpired token |
//! | `GET /metrics` | — | the application's metrics and ws-core's, one OpenMetrics page |
//! | `GET /health` | — | `ok` |
//!
//! A missing, malformed or expired bearer token gets 401 on every route; the REST routes answer within
//! 10 s (408 past it) and take bodies up to 16 KiB (413 past it). Every request is traced by
//! `tower-http`'s `TraceLayer`, every connection and message by ws-core's spans (`RUST_LOG=debug`).
//!
//! On the socket: `list_notes` (reply: the notes) and `add_note {text}` (reply: the note; every client
//! gets `note_added`). The connection carries its token's expiry as ws-core's session: `$refresh
//! {token}` with a newer token of the same user moves it (reply: `{expires_in_ms}`; another user's token
//! is `forbidden`), and a connection still open when its token expires is closed with
//! [`TOKEN_EXPIRED`](ws_core::session::TOKEN_EXPIRED) (4001, "token expired"): this application gives
//! no grace past the expiry. The SDK's `getToken` refreshes before it and logs in again after it.
//!
//! The WebSocket handlers reach the application's state the axum way, as sub-states: [`Notes`] and
//! [`Tokens`] are the same values in [`AppState`] (for the REST handlers) and in the ws-core server
//! (`State<Notes>` in a message handler).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use ws_core::auth::{AuthRequest, ClientData};
use ws_core::config::ConfigError;
use ws_core::extract::State as MessageState;
use ws_core::{Client, Config, Error, Server, on, payload, ws_messages};

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Notes kept; the oldest goes when a new one would pass it.
pub const MAX_NOTES: usize = 1000;
/// How long a REST request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest REST request body.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// A note, as the REST API and the socket both show it.
#[payload]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its number, from 1.
    pub id: u64,
    /// Who wrote it.
    pub author: String,
    /// What it says.
    pub text: String,
}

/// Who a token stands for, and until when.
#[payload]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// What clients send on the socket.
#[ws_messages]
#[derive(Debug, Clone)]
pub enum Inbound {
    /// The notes, oldest first.
    #[ws(reply = Vec<Note>)]
    ListNotes,
    /// Adds a note; every client gets `note_added`.
    #[ws(reply = Note)]
    AddNote {
        /// Up to [`MAX_NOTE_CHARS`] characters.
        text: String,
    },
}

/// What the server sends on the socket.
#[ws_messages(outbound)]
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A note was added, over REST or over a socket.
    NoteAdded(Note),
}

/// Settings of the whole application.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Users and their passwords.
    pub users: HashMap<String, String>,
    /// The HS256 key tokens are signed with.
    pub secret: Vec<u8>,
    /// How long a token is valid.
    pub token_ttl: Duration,
    /// The WebSocket server's settings (its `path` is where it is mounted).
    pub ws: Config,
}

/// The JWT claims this application issues.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// Issues and checks tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tokens {
    fn new(secret: &[u8], ttl: Duration) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: the socket closes at `exp`, so a token must not be accepted after it.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            ttl,
        })
    }

    /// The session a token stands for: `unauthorized` ("token expired" or "invalid token") otherwise.
    pub fn check(&self, token: &str) -> Result<Session, Error> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            // jsonwebtoken accepts a token during the second of its `exp`; the socket closes at its start.
            Ok(data) if data.claims.exp <= now_secs() => Err(Error::unauthorized("token expired")),
            Ok(data) => Ok(Session {
                user: data.claims.sub,
                expires_at: data.claims.exp,
            }),
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Err(Error::unauthorized("token expired"))
            }
            Err(_) => Err(Error::unauthorized("invalid token")),
        }
    }

    /// A signed token for `user` and its session.
    pub fn sign(&self, user: &str) -> (String, Session) {
        let session = Session {
            user: user.to_owned(),
            expires_at: now_secs() + self.ttl.as_secs(),
        };
        let claims = Claims {
            sub: session.user.clone(),
            exp: session.expires_at,
        };
        // HS256 with a byte key signs any claims.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default();
        (token, session)
    }
}

/// The notes, newest last, at most [`MAX_NOTES`].
#[derive(Debug, Clone, Default)]
pub struct Notes(Arc<Mutex<NoteList>>);

#[derive(Debug, Default)]
struct NoteList {
    last_id: u64,
    notes: VecDeque<Note>,
}

impl Notes {
    /// Every note, oldest first.
    pub fn list(&self) -> Vec<Note> {
        self.lock().notes.iter().cloned().collect()
    }

    /// Adds a note by `author` (dropping the oldest past [`MAX_NOTES`]); `invalid_data` when the text is
    /// empty or longer than [`MAX_NOTE_CHARS`].
    pub fn add(&self, author: &str, text: String) -> Result<Note, Error> {
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_NOTE_CHARS {
            return Err(Error::invalid_data(format!(
                "a note has 1 to {MAX_NOTE_CHARS} characters"
            )));
        }
        let mut list = self.lock();
        list.last_id += 1;
        let note = Note {
            id: list.last_id,
            author: author.to_owned(),
            text,
        };
        if list.notes.len() == MAX_NOTES {
            list.notes.pop_front();
        }
        list.notes.push_back(note.clone());
        Ok(note)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NoteList> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What the REST handlers share: the application's own state, and the WebSocket server.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The notes.
    pub notes: Notes,
    /// Token issuing and checking.
    pub tokens: Tokens,
    /// The WebSocket server mounted on `/ws`.
    pub server: Server,
    users: Arc<HashMap<String, String>>,
    logins: Family<OutcomeLabel, Counter>,
    registry: Arc<Registry>,
}

impl FromRef<AppState> for Server {
    fn from_ref(state: &AppState) -> Server {
        state.server.clone()
    }
}

/// A REST caller with a valid bearer token (401 otherwise).
#[derive(Debug)]
pub struct Authenticated(pub Session);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Error::unauthorized("a bearer token is required"))?;
        state.tokens.check(token).map(Authenticated)
    }
}

/// The token of a WebSocket upgrade: a bearer header (other programs), the `token` cookie (a page on
/// the same site), or `?token=` (a browser cannot set headers on a WebSocket).
fn upgrade_token(req: &AuthRequest) -> Option<String> {
    req.header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| req.cookie("token"))
        .or_else(|| req.query("token"))
}

/// The user a client's token stands for.
fn user(client: &Client) -> String {
    client
        .extension::<Session>()
        .map(|s| s.user)
        .unwrap_or_default()
}

#[on(Inbound::ListNotes)]
async fn list_notes(MessageState(notes): MessageState<Notes>) -> Vec<Note> {
    notes.list()
}

#[on(Inbound::AddNote)]
async fn add_note(
    client: Client,
    MessageState(notes): MessageState<Notes>,
    msg: inbound::AddNote,
) -> Result<Note, Error> {
    let note = notes.add(&user(&client), msg.text)?;
    client
        .server()
        .all()
        .send(Outbound::NoteAdded(note.clone()));
    Ok(note)
}

/// The WebSocket server: its handlers reach [`Notes`] and [`Tokens`] as states.
///
/// # Errors
///
/// When `settings.ws` cannot work.
pub fn websocket_server(
    settings: &Settings,
    notes: Notes,
    tokens: Tokens,
) -> Result<Server, ConfigError> {
    let check = tokens.clone();
    let refresh = tokens.clone();
    // The socket closes at the token's expiry, as the REST routes refuse it from then on.
    Server::builder(settings.ws.clone().session_grace(Duration::ZERO))
        .protocol_version(
            ws_core::version::ProtocolVersion::new()
                .messages::<Inbound>()
                .messages::<Outbound>(),
        )
        .with_state(notes)
        .with_state(tokens)
        .auth(move |req: AuthRequest| {
            let data = upgrade_token(&req)
                .ok_or_else(|| Error::unauthorized("a token is required"))
                .and_then(|token| check.check(&token))
                .map(client_data);
            async move { data }
        })
        .on_refresh(move |_: Client, token: String| {
            let data = refresh.check(&token).map(client_data);
            async move { data }
        })
        .handle(list_notes)
        .handle(add_note)
        .build()
}

/// What a token gives its connection: its user and expiry (ws-core's session) and the [`Session`] the
/// handlers read.
fn client_data(session: Session) -> ClientData {
    ClientData::new()
        .user(&session.user)
        .expires_at(UNIX_EPOCH + Duration::from_secs(session.expires_at))
        .extension(session)
}

/// Why the application cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The WebSocket settings cannot work.
    #[error("websocket settings: {0}")]
    Config(#[from] ConfigError),
    /// The token key is not usable.
    #[error("token key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
}

/// The application: REST routes behind their layers, `/ws`, `/metrics`, `/health`, and the state they
/// share.
///
/// # Errors
///
/// When `settings.ws` cannot work or the secret is not a usable key.
pub fn app(settings: Settings) -> Result<(Router, AppState), SetupError> {
    let notes = Notes::default();
    let tokens = Tokens::new(&settings.secret, settings.token_ttl)?;
    let server = websocket_server(&settings, notes.clone(), tokens.clone())?;
    let logins = Family::<OutcomeLabel, Counter>::default();
    let mut registry = Registry::default();
    registry.register("app_logins", "Login attempts by outcome", logins.clone());
    server.register_metrics(&mut registry);
    let state = AppState {
        notes,
        tokens,
        server,
        users: Arc::new(settings.users),
        logins,
        registry: Arc::new(registry),
    };
    let api = Router::new()
        .route("/login", post(login))
        .route("/api/me", get(me))
        .route("/api/notes", get(list).post(add))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let router = Router::new()
        .merge(api)
        .route(&settings.ws.path, get(ws_core::handle_connection))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(TraceLayer::new_for_http())
        .with_state(state.clone());
    Ok((router, state))
}

#[derive(Debug, Deserialize)]
struct Login {
    user: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct Issued {
    token: String,
    user: String,
    expires_at: u64,
}

async fn login(
    State(state): State<AppState>,
    Json(login): Json<Login>,
) -> Result<Json<Issued>, Error> {
    let known = state
        .users
        .get(&login.user)
        .is_some_and(|password| *password == login.password);
    let outcome = if known { "ok" } else { "refused" };
    state.logins.get_or_create(&OutcomeLabel { outcome }).inc();
    if !known {
        return Err(Error::unauthorized("unknown user or wrong password"));
    }
    let (token, session) = state.tokens.sign(&login.user);
    Ok(Json(Issued {
        token,
        user: session.user,
        expires_at: session.expires_at,
    }))
}

async fn me(Authenticated(session): Authenticated) -> Json<Session> {
    Json(session)
}

async fn list(_: Authenticated, State(notes): State<Notes>) -> Json<Vec<Note>> {
    Json(notes.list())
}

#[derive(Debug, Deserialize)]
struct NewNote {
    text: String,
}

async fn add(
    Authenticated(session): Authenticated,
    State(state): State<AppState>,
    Json(new): Json<NewNote>,
) -> Result<(StatusCode, Json<Note>), Error> {
    let note = state.notes.add(&session.user, new.text)?;
    state.server.all().send(Outbound::NoteAdded(note.clone()));
    Ok((StatusCode::CREATED, Json(note)))
}

impl FromRef<AppState> for Notes {
    fn from_ref(state: &AppState) -> Notes {
        state.notes.clone()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut page = String::new();
    match prometheus_client::encoding::text::encode(&mut page, &state.registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, ws_core::metrics::CONTENT_TYPE)],
            page,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
