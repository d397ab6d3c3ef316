//! `$refresh`: the request that gives a connection a new credential, answered by the application's
//! refresh hook in order with the connection's other frames.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::ClientData;
use crate::client::Client;
use crate::error::{Error, ErrorCode};
use crate::handler::{BoxFuture, Endpoint, Reply, Request};
use crate::stats::bump;

use super::{Expiry, MAX_TOKEN_BYTES, Session, left_frame};

/// The application's check of a new token: the connection's new data, or why not.
pub(crate) type RefreshHook =
    Arc<dyn Fn(Client, String) -> BoxFuture<Result<ClientData, Error>> + Send + Sync>;

#[derive(serde::Deserialize)]
struct Token {
    token: String,
}

/// The route of `$refresh`, around the hook.
pub(crate) fn endpoint(hook: RefreshHook) -> Endpoint {
    Arc::new(move |req: Request| {
        let hook = hook.clone();
        Box::pin(async move {
            let Token { token } = req.decode()?;
            if token.len() > MAX_TOKEN_BYTES {
                return Err(Error::invalid_data(format!(
                    "token longer than {MAX_TOKEN_BYTES} bytes"
                )));
            }
            let client = req.client().clone();
            let data = hook(client.clone(), token).await?;
            refresh(&client, data)
        })
    })
}

/// Gives the connection `data`: its expiry, metadata and extensions, after the checks an upgrade makes.
fn refresh(client: &Client, data: ClientData) -> Result<Reply, Error> {
    let member = client.member();
    let server = client.server();
    let node = server.node();
    let Some(session) = member.session() else {
        return Err(Error::internal("the connection has no session"));
    };
    if let (Some(now), Some(new)) = (session.user(), data.user_name())
        && now != new
    {
        return Err(Error::forbidden("the token names another user"));
    }
    if let Some(user) = data.user_name().or(session.user())
        && node.local.revoked(user, data.issued())
    {
        return Err(Error::unauthorized("token revoked"));
    }
    if data.expiry().is_some_and(|at| at <= SystemTime::now()) {
        return Err(Error::unauthorized("token expired"));
    }
    if data.metadata_bytes() > node.config.max_metadata_bytes {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            "the token's metadata exceeds max_metadata_bytes",
        ));
    }
    session.set_expiry(data.expiry());
    data.apply_data(member);
    if node.local.checks_joins() {
        check_groups_again(client, session);
    }
    bump(&node.stats.sessions_refreshed);
    Reply::json(&Expiry::from(session.expires_in()))
}

/// Runs the join check again for every group the client is in, with its new extensions: a granted
/// membership gets its new end, a refused one is left and the client told.
fn check_groups_again(client: &Client, session: &Session) {
    let server = client.server();
    let local = &server.node().local;
    for group in client.groups() {
        match local.authorize(client.member(), &group) {
            Ok(membership) => session.set_membership(&group, membership.ends_at()),
            Err(_) => {
                if client.leave(&group) {
                    let _ = client.send(left_frame(&group, "unauthorized"));
                }
            }
        }
    }
}
