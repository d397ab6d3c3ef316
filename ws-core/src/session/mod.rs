//! Sessions: whose a connection is, and how long its authentication holds.
//!
//! The authenticator runs once, before the upgrade; a session carries what it decided through the
//! connection's life. What holds:
//!
//! - **Expiry.** A connection whose authenticator gave it an expiry
//!   ([`ClientData::expires_at`](crate::auth::ClientData::expires_at)) gets `$session {"expires_in_ms":
//!   N}` as its first frame. Unless it refreshes, it is closed with [`TOKEN_EXPIRED`] (4001 "token
//!   expired") [`session_grace`](crate::Config::session_grace) after the expiry (10 s by default, for a
//!   refresh already on its way). A credential that has expired already is refused before the upgrade
//!   (401 "token expired").
//! - **Refresh in-band.** With a refresh hook ([`ServerBuilder::on_refresh`](crate::ServerBuilder::on_refresh)),
//!   a client sends the request `$refresh {"token": "..."}` (at most [`MAX_TOKEN_BYTES`]). The hook checks
//!   the token as the authenticator would and returns the connection's new [`ClientData`](crate::auth::ClientData): its expiry
//!   replaces the old one (none: the connection no longer expires), its metadata and extensions are set
//!   before the reply goes out, so every frame the client sends after the `$refresh` is handled with
//!   them (frames are handled in order). The answer is `$reply {"expires_in_ms": N}` (`null`: no
//!   expiry), or the hook's `$error`, which changes nothing: the old expiry still runs. A token that names
//!   another user than the connection's is `forbidden`, a revoked one `unauthorized`. Without a hook,
//!   `$refresh` is an unknown type. It counts against the rate limit like any frame.
//! - **Per-group authorization.** With a join check ([`ServerBuilder::authorize_join`](crate::ServerBuilder::authorize_join)),
//!   every join of a client of this node — by its handlers, by [`Server::join_group`](crate::Server::join_group),
//!   or asked by another node — runs the check first, with the client's extensions (its token's claims);
//!   an `Err` is the join's error and the client stays out. The [`Membership`] it grants may end: past
//!   that time the client leaves the group and is told with `$left {"group", "reason": "expired"}`. A
//!   refresh runs the check again for every group the client is in, with the new token's extensions: a
//!   granted membership gets its new end, a refused one is left (`"reason": "unauthorized"`).
//! - **Disconnection and revocation on every node.** [`Server::disconnect_client`](crate::Server::disconnect_client),
//!   [`Server::disconnect_user`](crate::Server::disconnect_user) and
//!   [`Server::revoke_user`](crate::Server::revoke_user) reach the connections of every node the
//!   backplane links. A revocation also refuses, on every node and for as long as it lasts, a handshake
//!   or a refresh of that user whose credential was issued before it
//!   ([`ClientData::issued_at`](crate::auth::ClientData::issued_at); one that names no issue time is
//!   refused for the whole revocation). A node keeps at most
//!   [`max_revoked_users`](crate::Config::max_revoked_users) revocations; past it, the one that ends
//!   first is forgotten early.

pub(crate) mod policy;
pub(crate) mod refresh;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::client::id::ClientId;
use crate::close::CloseCode;
use crate::sync::lock;

/// 4001: the connection's credential expired, and no refresh came within `session_grace`. The SDK gets a
/// new token (with its `getToken`) and connects again; without one it stays closed.
pub const TOKEN_EXPIRED: CloseCode = CloseCode::application(4001);
/// 4003: the connection's user was revoked ([`Server::revoke_user`](crate::Server::revoke_user)).
pub const REVOKED: CloseCode = CloseCode::application(4003);
/// The longest token a `$refresh` may carry, in bytes; a longer one is answered `invalid_data`.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The `type` of the frame that tells a client when its session expires.
pub const SESSION_TYPE: &str = "$session";
/// The `type` of a client's request to refresh its session.
pub const REFRESH_TYPE: &str = "$refresh";
/// The `type` of the frame that tells a client it was taken out of a group: its membership ended, or a
/// refresh no longer grants it.
pub const LEFT_TYPE: &str = "$left";

/// What a join check grants ([`ServerBuilder::authorize_join`](crate::ServerBuilder::authorize_join)): a
/// membership for as long as the client stays, or one that ends.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ws_core::session::Membership;
///
/// let trial = Membership::until(SystemTime::now() + Duration::from_secs(600));
/// assert!(trial.ends_at().is_some());
/// assert_eq!(Membership::granted().ends_at(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Membership {
    until: Option<SystemTime>,
}

impl Membership {
    /// A membership that lasts as long as the client stays in the group.
    #[must_use]
    pub fn granted() -> Self {
        Self { until: None }
    }

    /// A membership that ends at `at`, unless a refresh grants it again.
    #[must_use]
    pub fn until(at: SystemTime) -> Self {
        Self { until: Some(at) }
    }

    /// When it ends, if it does.
    #[must_use]
    pub fn ends_at(&self) -> Option<SystemTime> {
        self.until
    }
}

/// What the writer of a connection with a session waits for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The credential expired, and the grace passed.
    Expired,
    /// The client's membership of this group ended.
    MembershipEnded(String),
}

/// The `$left` frame.
pub(crate) fn left_frame(group: &str, reason: &str) -> crate::protocol::Frame {
    crate::protocol::Frame::envelope(
        LEFT_TYPE,
        &serde_json::json!({"group": group, "reason": reason}),
    )
}

/// One connection's session: its user and its expiry, which a refresh moves.
#[derive(Debug)]
pub(crate) struct Session {
    user: Option<Arc<str>>,
    expiry: Mutex<Option<SystemTime>>,
    /// The memberships that end, by group: at most `max_groups_per_client`, as the groups themselves.
    memberships: Mutex<HashMap<String, SystemTime>>,
    changed: Notify,
}

impl Session {
    pub(crate) fn new(user: Option<Arc<str>>, expiry: Option<SystemTime>) -> Self {
        Self {
            user,
            expiry: Mutex::new(expiry),
            memberships: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }

    /// Records when the client's membership of `group` ends (`None`: it does not).
    pub(crate) fn set_membership(&self, group: &str, ends: Option<SystemTime>) {
        let mut memberships = lock(&self.memberships);
        match ends {
            Some(at) => {
                memberships.insert(group.to_owned(), at);
            }
            None => {
                if memberships.remove(group).is_none() {
                    return;
                }
            }
        }
        drop(memberships);
        self.changed.notify_waiters();
    }

    /// The client left `group`, or all its groups (`None`).
    pub(crate) fn forget_membership(&self, group: Option<&str>) {
        let mut memberships = lock(&self.memberships);
        match group {
            Some(group) => {
                memberships.remove(group);
            }
            None => memberships.clear(),
        }
    }

    /// Resolves with the next thing due: the credential's expiry plus `grace`, or the end of a
    /// membership (taken out of the list), whichever comes first and still holds when it comes.
    pub(crate) async fn next_event(self: Arc<Self>, grace: Duration) -> Event {
        loop {
            // Created before the reads: `notify_waiters` reaches a `Notified` from its creation on.
            let changed = self.changed.notified();
            let expiry = *lock(&self.expiry);
            let membership = lock(&self.memberships)
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(group, at)| (group.clone(), *at));
            let expires = expiry.map(|at| left_until(at) + grace);
            let ends = membership.as_ref().map(|(_, at)| left_until(*at));
            let wait = match (expires, ends) {
                (None, None) => {
                    changed.await;
                    continue;
                }
                (Some(d), None) | (None, Some(d)) => d,
                (Some(a), Some(b)) => a.min(b),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    if expires == Some(wait) && *lock(&self.expiry) == expiry {
                        return Event::Expired;
                    }
                    if let Some((group, at)) = membership {
                        let mut memberships = lock(&self.memberships);
                        if memberships.get(&group) == Some(&at) && at <= SystemTime::now() {
                            memberships.remove(&group);
                            return Event::MembershipEnded(group);
                        }
                    }
                }
                () = changed => {}
            }
        }
    }

    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Time left before the expiry (zero once past it), or `None` without one.
    pub(crate) fn expires_in(&self) -> Option<Duration> {
        let expiry = *lock(&self.expiry);
        expiry.map(left_until)
    }

    pub(crate) fn set_expiry(&self, expiry: Option<SystemTime>) {
        *lock(&self.expiry) = expiry;
        self.changed.notify_waiters();
    }
}

fn left_until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The `$session` frame: when the session expires.
pub(crate) fn session_frame(expires_in: Duration) -> crate::protocol::Frame {
    crate::protocol::Frame::envelope(SESSION_TYPE, &Expiry::from(Some(expires_in)))
}

/// `{"expires_in_ms": N}`, the data of `$session` and of `$refresh`'s reply.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Expiry {
    expires_in_ms: Option<u64>,
}

impl From<Option<Duration>> for Expiry {
    fn from(left: Option<Duration>) -> Self {
        Self {
            expires_in_ms: left.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Whom a disconnection reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One connection, by id.
    Client(ClientId),
    /// Every connection whose authenticator named this user ([`ClientData::user`](crate::auth::ClientData::user)).
    User(String),
}

/// An order to close connections on every node, and to remember a user's revocation: what
/// [`Server::disconnect_client`](crate::Server::disconnect_client),
/// [`Server::disconnect_user`](crate::Server::disconnect_user) and
/// [`Server::revoke_user`](crate::Server::revoke_user) hand the backplane
/// ([`Backplane::disconnect_elsewhere`](crate::backplane::Backplane::disconnect_elsewhere)), and what a
/// distributed backplane applies on the other nodes with
/// [`MemoryBackplane::disconnect`](crate::backplane::MemoryBackplane::disconnect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Whom it closes.
    pub target: Target,
    /// The close frame's code.
    pub code: CloseCode,
    /// The close frame's reason.
    pub reason: String,
    /// For a user: refuse their credentials issued before `revoked_at` until `revoked_until`.
    pub revocation: Option<Revocation>,
}

/// A user's revocation: credentials issued before `revoked_at` are refused until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// When it was decided.
    pub revoked_at: SystemTime,
    /// When it ends.
    pub until: SystemTime,
}

/// The revocations this node knows of, by user, bounded.
#[derive(Debug)]
pub(crate) struct Revocations {
    max: usize,
    users: Mutex<HashMap<String, Revocation>>,
}

impl Revocations {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            users: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn record(&self, user: &str, revocation: Revocation) {
        let now = SystemTime::now();
        let mut users = lock(&self.users);
        users.retain(|_, r| r.until > now);
        if users.len() >= self.max && !users.contains_key(user) {
            let first = users
                .iter()
                .min_by_key(|(_, r)| r.until)
                .map(|(u, _)| u.clone());
            if let Some(first) = first {
                users.remove(&first);
            }
        }
        let kept = users.entry(user.to_owned()).or_insert(revocation);
        kept.revoked_at = kept.revoked_at.max(revocation.revoked_at);
        kept.until = kept.until.max(revocation.until);
    }

    /// Whether a credential of `user` issued at `issued_at` (unknown: `None`) is revoked now.
    pub(crate) fn refuses(&self, user: &str, issued_at: Option<SystemTime>) -> bool {
        let users = lock(&self.users);
        let Some(revocation) = users.get(user) else {
            return false;
        };
        revocation.until > SystemTime::now()
            && issued_at.is_none_or(|at| at <= revocation.revoked_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(revoked_at: SystemTime, lasts: Duration) -> Revocation {
        Revocation {
            revoked_at,
            until: revoked_at + lasts,
        }
    }

    #[test]
    fn a_revocation_refuses_what_was_issued_before_it_and_ends() {
        let revocations = Revocations::new(10);
        let now = SystemTime::now();
        revocations.record("ann", revocation(now, Duration::from_secs(60)));
        assert!(revocations.refuses("ann", Some(now - Duration::from_secs(1))));
        assert!(revocations.refuses("ann", None));
        assert!(!revocations.refuses("ann", Some(now + Duration::from_secs(1))));
        assert!(!revocations.refuses("bob", None));
        revocations.record(
            "cid",
            revocation(now - Duration::from_secs(120), Duration::from_secs(60)),
        );
        assert!(!revocations.refuses("cid", None), "ended");
    }

    #[test]
    fn past_the_bound_the_revocation_that_ends_first_is_forgotten() {
        let revocations = Revocations::new(2);
        let now = SystemTime::now();
        revocations.record("ann", revocation(now, Duration::from_secs(30)));
        revocations.record("bob", revocation(now, Duration::from_secs(60)));
        revocations.record("cid", revocation(now, Duration::from_secs(90)));
        assert!(!revocations.refuses("ann", None));
        assert!(revocations.refuses("bob", None));
        assert!(revocations.refuses("cid", None));
        assert_eq!(lock(&revocations.users).len(), 2);
    }
}
