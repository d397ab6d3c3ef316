//! A collaborative whiteboard on ws-core: one group per board, presence from the group's membership,
//! and one delivery policy per kind of message.
//!
//! | kind | policy | why |
//! |---|---|---|
//! | `stroke` | reliable, kept in the board's history | a lost stroke is a wrong drawing |
//! | `cursor` | latest per user | only where a cursor is now matters; a client that is behind gets the newest position, not the path |
//! | `drawing` | volatile | "ann is drawing…" is worth nothing late; skipped for a client that is behind |
//! | `presence` | latest | the newest member list replaces a waiting one |
//!
//! A client joins one board at a time (`join` leaves the previous one) and gets the board's strokes and
//! members in the reply. Bounds, each answered with `$error` `invalid_data` or `limit_exceeded`: user names
//! 1–32 characters, board names 1–64 of `A–Z a–z 0–9 - _`, colors `#rrggbb`, widths 1–32, 1–1 000 points per
//! stroke, coordinates 0–4 096; a board keeps its latest 200 000 points (older strokes go first), and at
//! most 100 boards are kept (one nobody is on is forgotten to make room). Worst case: about 1.6 MB of points
//! per board, 160 MB in all.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ws_core::auth::{AuthRequest, ClientData};
use ws_core::config::ConfigError;
use ws_core::extract::State;
use ws_core::{Client, Config, Error, Server, ServerBuilder, on, payload, ws_messages};

/// Longest user name, in characters.
pub const MAX_USER_CHARS: usize = 32;
/// Longest board name, in bytes.
pub const MAX_BOARD_BYTES: usize = 64;
/// Most points in one stroke.
pub const MAX_STROKE_POINTS: usize = 1000;
/// Most points a board keeps.
pub const MAX_BOARD_POINTS: usize = 200_000;
/// Most boards kept.
pub const MAX_BOARDS: usize = 100;
/// Largest coordinate.
pub const MAX_COORDINATE: i32 = 4096;
/// Widest stroke.
pub const MAX_WIDTH: u8 = 32;

/// Member colors, given out by client id.
const PALETTE: [&str; 8] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#9a6324", "#800000",
];

/// A point on the board.
#[payload]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// From the left edge.
    pub x: i32,
    /// From the top edge.
    pub y: i32,
}

/// A stroke as the board keeps and sends it.
#[payload]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrokeData {
    /// Its number on the board, from 1.
    pub id: u64,
    /// Who drew it.
    pub user: String,
    /// `#rrggbb`.
    pub color: String,
    /// Line width, 1–32.
    pub width: u8,
    /// The line's points, in order.
    pub points: Vec<Point>,
}

/// Someone on a board.
#[payload]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The client id.
    pub id: String,
    /// The user name.
    pub user: String,
    /// The member's cursor color.
    pub color: String,
}

/// The answer to `join`.
#[payload]
#[derive(Debug, Clone)]
pub struct Joined {
    /// The board.
    pub board: String,
    /// The joining client, as the others see it.
    pub you: Member,
    /// The board's strokes, oldest first.
    pub strokes: Vec<StrokeData>,
    /// Who is on the board, the joining client included.
    pub members: Vec<Member>,
}

/// The answer to `clear`.
#[payload]
#[derive(Debug, Clone)]
pub struct Cleared {
    /// Strokes removed.
    pub removed: u64,
}

/// What clients send.
#[ws_messages]
#[derive(Debug, Clone)]
pub enum Inbound {
    /// Joins a board (leaving the previous one); the reply has its strokes and members.
    #[ws(reply = Joined)]
    Join {
        /// 1–64 of `A–Z a–z 0–9 - _`.
        board: String,
    },
    /// A finished stroke: kept, and sent to the board's other members.
    Stroke {
        /// `#rrggbb`.
        color: String,
        /// 1–32.
        width: u8,
        /// 1–1 000 points.
        points: Vec<Point>,
    },
    /// Where the sender's pointer is on the board.
    Cursor {
        /// From the left edge.
        x: i32,
        /// From the top edge.
        y: i32,
    },
    /// The sender started or stopped drawing.
    Drawing {
        /// Whether a stroke is in progress.
        active: bool,
    },
    /// Removes every stroke of the board.
    #[ws(reply = Cleared)]
    Clear,
}

/// What the server sends.
#[ws_messages(outbound)]
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Another member's stroke.
    Stroke(StrokeData),
    /// Another member's pointer; only the newest per member waits for a client that is behind.
    #[ws(latest = "id")]
    Cursor {
        /// The member's client id.
        id: String,
        /// The member's name.
        user: String,
        /// The member's color.
        color: String,
        /// From the left edge.
        x: i32,
        /// From the top edge.
        y: i32,
    },
    /// Another member started or stopped drawing; skipped for a client that is behind.
    #[ws(volatile)]
    Drawing {
        /// The member's name.
        user: String,
        /// Whether a stroke is in progress.
        active: bool,
    },
    /// Who is on the board now, after a join or a leave.
    #[ws(latest)]
    Presence {
        /// The board.
        board: String,
        /// Its members.
        members: Vec<Member>,
    },
    /// A member cleared the board.
    Cleared {
        /// Who cleared it.
        user: String,
    },
}

/// Every board's strokes, bounded in boards and points.
#[derive(Debug, Clone, Default)]
pub struct Boards(Arc<Mutex<HashMap<String, Board>>>);

#[derive(Debug, Default)]
struct Board {
    last_id: u64,
    points: usize,
    strokes: VecDeque<StrokeData>,
}

impl Boards {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Board>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The strokes of `board`, making room for it if it is new: past [`MAX_BOARDS`], a board nobody is on
    /// is forgotten; when every board has members, `limit_exceeded`.
    fn open(&self, server: &Server, board: &str) -> Result<Vec<StrokeData>, Error> {
        let mut boards = self.lock();
        if let Some(b) = boards.get(board) {
            return Ok(b.strokes.iter().cloned().collect());
        }
        if boards.len() >= MAX_BOARDS {
            let idle = boards
                .keys()
                .find(|name| server.is_group_empty(&group(name)))
                .cloned();
            match idle {
                Some(name) => boards.remove(&name),
                None => {
                    return Err(Error::new(
                        ws_core::error::ErrorCode::LimitExceeded,
                        format!("all {MAX_BOARDS} boards are in use"),
                    ));
                }
            };
        }
        boards.insert(board.to_owned(), Board::default());
        Ok(Vec::new())
    }

    /// Keeps a stroke, dropping the oldest past [`MAX_BOARD_POINTS`]; the stroke with its number.
    fn add(&self, board: &str, mut stroke: StrokeData) -> StrokeData {
        let mut boards = self.lock();
        let b = boards.entry(board.to_owned()).or_default();
        b.last_id += 1;
        stroke.id = b.last_id;
        b.points += stroke.points.len();
        b.strokes.push_back(stroke.clone());
        while b.points > MAX_BOARD_POINTS {
            let Some(old) = b.strokes.pop_front() else {
                break;
            };
            b.points -= old.points.len();
        }
        stroke
    }

    fn clear(&self, board: &str) -> u64 {
        let mut boards = self.lock();
        let Some(b) = boards.get_mut(board) else {
            return 0;
        };
        let removed = b.strokes.len() as u64;
        b.strokes.clear();
        b.points = 0;
        removed
    }
}

/// The group of a board.
fn group(board: &str) -> String {
    format!("board:{board}")
}

/// The board a client is on.
fn board_of(client: &Client) -> Option<String> {
    client
        .groups()
        .into_iter()
        .find_map(|g| g.strip_prefix("board:").map(str::to_owned))
}

/// The user name the token stands for, stored on the client by the authenticator.
#[derive(Clone)]
struct User(String);

fn member(client: &Client) -> Member {
    let user = client
        .extension::<User>()
        .map(|User(name)| name)
        .unwrap_or_default();
    let hash = client.id().as_str().bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    Member {
        id: client.id().to_string(),
        user,
        color: PALETTE[hash % PALETTE.len()].to_owned(),
    }
}

/// The members of `board` on this node, but `except`, sorted by name.
fn members(server: &Server, board: &str, except: Option<&str>) -> Vec<Member> {
    let mut members: Vec<Member> = server
        .local_group_members(&group(board))
        .iter()
        .filter(|c| Some(c.id().as_str()) != except)
        .map(member)
        .collect();
    members.sort_by(|a, b| (&a.user, &a.id).cmp(&(&b.user, &b.id)));
    members
}

fn announce(server: &Server, board: &str, except: Option<&str>) {
    let members = members(server, board, except);
    server.to(&group(board)).send(Outbound::Presence {
        board: board.to_owned(),
        members,
    });
}

fn in_range(x: i32, y: i32) -> bool {
    (0..=MAX_COORDINATE).contains(&x) && (0..=MAX_COORDINATE).contains(&y)
}

async fn authenticate(req: AuthRequest) -> Result<ClientData, Error> {
    let user = req.query("token").unwrap_or_default();
    let chars = user.chars().count();
    if chars == 0 || chars > MAX_USER_CHARS {
        return Err(Error::unauthorized(format!(
            "?token= is the user name: 1 to {MAX_USER_CHARS} characters"
        )));
    }
    Ok(ClientData::new()
        .extension(User(user.clone()))
        .span_user(user))
}

#[on(Inbound::Join)]
async fn join(
    client: Client,
    State(boards): State<Boards>,
    msg: inbound::Join,
) -> Result<Joined, Error> {
    let name = msg.board;
    let valid = !name.is_empty()
        && name.len() <= MAX_BOARD_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(Error::invalid_data(format!(
            "a board name is 1 to {MAX_BOARD_BYTES} of A-Z a-z 0-9 - _"
        )));
    }
    let server = client.server();
    let strokes = boards.open(&server, &name)?;
    if let Some(previous) = board_of(&client).filter(|b| *b != name) {
        client.leave(&group(&previous));
        announce(&server, &previous, None);
    }
    client.join(&group(&name))?;
    announce(&server, &name, None);
    Ok(Joined {
        you: member(&client),
        members: members(&server, &name, None),
        board: name,
        strokes,
    })
}

#[on(Inbound::Stroke)]
async fn stroke(
    client: Client,
    State(boards): State<Boards>,
    msg: inbound::Stroke,
) -> Result<(), Error> {
    let board = board_of(&client).ok_or_else(|| Error::invalid_data("join a board first"))?;
    let color_ok = msg.color.len() == 7
        && msg.color.starts_with('#')
        && msg.color[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !color_ok || msg.width == 0 || msg.width > MAX_WIDTH {
        return Err(Error::invalid_data("a color is #rrggbb and a width 1 to 32").reported());
    }
    if msg.points.is_empty()
        || msg.points.len() > MAX_STROKE_POINTS
        || !msg.points.iter().all(|p| in_range(p.x, p.y))
    {
        return Err(Error::invalid_data(format!(
            "a stroke has 1 to {MAX_STROKE_POINTS} points, each within 0 to {MAX_COORDINATE}"
        ))
        .reported());
    }
    let stroke = boards.add(
        &board,
        StrokeData {
            id: 0,
            user: member(&client).user,
            color: msg.color,
            width: msg.width,
            points: msg.points,
        },
    );
    client.to(&group(&board)).send(Outbound::Stroke(stroke));
    Ok(())
}

#[on(Inbound::Cursor)]
async fn cursor(client: Client, msg: inbound::Cursor) {
    let Some(board) = board_of(&client) else {
        return;
    };
    if !in_range(msg.x, msg.y) {
        return;
    }
    let me = member(&client);
    client.to(&group(&board)).send(Outbound::Cursor {
        id: me.id,
        user: me.user,
        color: me.color,
        x: msg.x,
        y: msg.y,
    });
}

#[on(Inbound::Drawing)]
async fn drawing(client: Client, msg: inbound::Drawing) {
    if let Some(board) = board_of(&client) {
        client.to(&group(&board)).send(Outbound::Drawing {
            user: member(&client).user,
            active: msg.active,
        });
    }
}

#[on(Inbound::Clear)]
async fn clear(client: Client, State(boards): State<Boards>) -> Result<Cleared, Error> {
    let board = board_of(&client).ok_or_else(|| Error::invalid_data("join a board first"))?;
    let removed = boards.clear(&board);
    client.to(&group(&board)).send(Outbound::Cleared {
        user: member(&client).user,
    });
    Ok(Cleared { removed })
}

/// The whiteboard server, ready for more settings before it is built.
pub fn builder(config: Config) -> ServerBuilder {
    Server::builder(config)
        .with_state(Boards::default())
        .auth(authenticate)
        .protocol_version(
            ws_core::version::ProtocolVersion::new()
                .messages::<Inbound>()
                .messages::<Outbound>(),
        )
        .on_disconnect(|client| async move {
            // The hooks run before the client leaves its groups: the others get the list without it.
            if let Some(board) = board_of(&client) {
                announce(&client.server(), &board, Some(client.id().as_str()));
            }
        })
        .handle(join)
        .handle(stroke)
        .handle(cursor)
        .handle(drawing)
        .handle(clear)
}

/// The whiteboard server with every handler registered.
///
/// # Errors
///
/// When `config` cannot work.
pub fn build(config: Config) -> Result<Server, ConfigError> {
    builder(config).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stroke(points: usize) -> StrokeData {
        StrokeData {
            id: 0,
            user: "ann".to_owned(),
            color: "#000000".to_owned(),
            width: 1,
            points: vec![Point { x: 1, y: 1 }; points],
        }
    }

    #[test]
    fn a_board_keeps_its_latest_points_within_the_bound() {
        let boards = Boards::default();
        for _ in 0..=MAX_BOARD_POINTS / MAX_STROKE_POINTS {
            boards.add("b", stroke(MAX_STROKE_POINTS));
        }
        let guard = boards.lock();
        let board = &guard["b"];
        assert_eq!(board.points, MAX_BOARD_POINTS);
        assert_eq!(board.strokes.len(), MAX_BOARD_POINTS / MAX_STROKE_POINTS);
        assert_eq!(
            board.strokes.front().map(|s| s.id),
            Some(2),
            "the oldest went"
        );
    }
}
