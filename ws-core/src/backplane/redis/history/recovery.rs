//! What the subscriber does for a client that joins a group with history (its position and what it
//! missed) and for a `$history` request.

use redis::RedisError;

use super::stream::Streams;
use super::{Command, HistoryState, Kept, Tracked, position_here, release};
use crate::backplane::redis::wire::unix_millis;
use crate::backplane::{Backplane, MemoryBackplane};
use crate::error::Error;
use crate::history::{HistoryReply, Position, outcome, position_frame, raw_frame};
use crate::member::Member;
use crate::protocol::{self, Frame};
use crate::sync::lock;

/// Runs a command; a Redis error is returned (the subscriber reconnects) after the client was answered.
/// `follow` subscribes this node to a group's channel, which a recovery does before it reads the history.
pub(crate) async fn run(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut impl Streams,
    command: Command,
    follow: impl AsyncFnOnce(String) -> Result<(), RedisError>,
) -> Result<(), RedisError> {
    match command {
        Command::Recover {
            client,
            group,
            wanted,
            joined_at,
            joined_ms,
        } => {
            let failed = wanted.as_ref().map(|_| false);
            let joined = Joined {
                at: joined_at,
                ms: joined_ms,
            };
            // Subscribed before the history is read: what comes after is received live.
            let subscribed = follow(group.clone()).await;
            let done = match subscribed {
                Ok(()) => recover(state, local, reader, &client, &group, wanted, joined).await,
                Err(e) => Err(e),
            };
            release(state, &group, client.id().as_str());
            if done.is_err() {
                let _ = client.send(position_frame(&group, None, failed, Some("unavailable")));
            }
            done
        }
        Command::Fetch {
            client,
            id,
            group,
            since,
        } => match fetch_from(state, reader, &group, since, id).await {
            Ok(answer) => {
                let _ = client.send(answer);
                Ok(())
            }
            Err(e) => {
                let err = Error::internal("history unavailable");
                let _ = client.send(protocol::error_frame(Some(id), &err));
                Err(e)
            }
        },
    }
}

/// When and where a client joined: what a client without a position of its own is owed is every frame
/// numbered after that.
struct Joined {
    at: Option<(String, u64)>,
    ms: u64,
}

async fn recover(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut impl Streams,
    client: &Member,
    group: &str,
    wanted: Option<Position>,
    joined: Joined,
) -> Result<(), RedisError> {
    if !local.is_in_group(group, client.id()) {
        return Ok(());
    }
    let (epoch, offset) = current(state, reader, group).await?;
    if epoch.is_empty() && !reader.has_room(group).await? {
        let failed = wanted.as_ref().map(|_| false);
        let _ = client.send(position_frame(group, None, failed, Some("unavailable")));
        return Ok(());
    }
    let start = match (&wanted, joined.at) {
        (Some(p), _) => (p.epoch == epoch && p.offset < offset).then_some(p.offset),
        (None, Some((at, o))) if at == epoch => Some(o),
        // The history restarted since the join: all of the new one came after it.
        (None, Some(_)) => Some(0),
        (None, None) => joined_before(state, reader, group, &epoch, offset, joined.ms).await?,
    };
    let mut missed = Vec::new();
    let mut first_kept = offset + 1;
    if let Some(start) = start.filter(|s| *s < offset) {
        missed = kept_after(state, reader, group, &epoch, start, offset).await?;
        if wanted.is_some() {
            let now = unix_millis();
            missed.retain(|k| !k.expired(state, now));
        }
        first_kept = missed.first().map_or(offset + 1, |k| k.offset);
    }
    let (recovered, reason) = outcome(wanted.as_ref(), &epoch, offset, first_kept);
    // A client without a position of its own stands right before the first frame it is owed.
    let stands_at = match (&wanted, start) {
        (None, Some(start)) if start < offset => start,
        _ => offset,
    };
    let at = (!epoch.is_empty()).then_some((epoch.as_str(), stands_at));
    let _ = client.send(position_frame(group, at, recovered, reason));
    if recovered == Some(true) || wanted.is_none() {
        for kept in missed {
            if client.send(kept.frame).is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// The position of `group` a joining client is placed against: where this node's members stand, unless
/// the history in Redis is another one (it restarted: Redis lost it, or it expired), or none joined here.
async fn current(
    state: &HistoryState,
    reader: &mut impl Streams,
    group: &str,
) -> Result<(String, u64), RedisError> {
    let latest = reader.head(group).await?.unwrap_or_default();
    let Some((epoch, offset)) = position_here(state, group) else {
        let t = Tracked::new(latest.0.clone(), latest.1);
        lock(&state.tracked).insert(group.to_owned(), t);
        return Ok(latest);
    };
    if epoch != latest.0 {
        return Ok(latest);
    }
    Ok((epoch, offset))
}

/// The frames of `epoch` after `start`, up to `offset`: from this node's recent copy when it reaches
/// back that far, else from the stream.
async fn kept_after(
    state: &HistoryState,
    reader: &mut impl Streams,
    group: &str,
    epoch: &str,
    start: u64,
    offset: u64,
) -> Result<Vec<Kept>, RedisError> {
    let recent = lock(&state.tracked)
        .get(group)
        .filter(|t| t.epoch == epoch)
        .and_then(|t| t.after(start));
    if let Some(recent) = recent {
        return Ok(recent.into_iter().filter(|k| k.offset <= offset).collect());
    }
    Ok(reader
        .read(group, start + 1, Some(offset))
        .await?
        .into_iter()
        .filter(|e| e.epoch == epoch && e.offset <= offset)
        .map(|e| Kept::of(&e, group))
        .collect())
}

/// For a client that joined a group no member here had joined: the offset of the last frame sent before
/// its join (by the senders' clocks, as the history's age is), read back from the stream, so that frames
/// numbered after the join but received here before, or not yet, are its own too. `None`: every kept
/// frame came before the join.
async fn joined_before(
    state: &HistoryState,
    reader: &mut impl Streams,
    group: &str,
    epoch: &str,
    offset: u64,
    joined_ms: u64,
) -> Result<Option<u64>, RedisError> {
    if epoch.is_empty() || offset == 0 {
        return Ok(None);
    }
    let limit = state.kept.get().map_or(1, |h| h.frames_per_group());
    let mut newest = offset;
    let mut looked = 0;
    while looked < limit && newest > 0 {
        let batch = 64.min(limit - looked) as u64;
        let oldest = newest.saturating_sub(batch - 1).max(1);
        let entries = reader.read(group, oldest, Some(newest)).await?;
        if entries.is_empty() {
            return Ok(Some(oldest - 1));
        }
        for entry in entries.iter().rev().filter(|e| e.epoch == epoch) {
            if entry.sent_ms.is_none_or(|sent| sent < joined_ms) {
                return Ok(Some(entry.offset));
            }
        }
        looked += entries.len();
        newest = oldest - 1;
    }
    Ok(Some(newest))
}

/// The answer to `$history` request `id`, a `$reply` or an `$error`; `Err` for a Redis failure.
async fn fetch_from(
    state: &HistoryState,
    reader: &mut impl Streams,
    group: &str,
    since: u64,
    id: u64,
) -> Result<Frame, RedisError> {
    let Some((epoch, offset)) = reader.head(group).await? else {
        let err = Error::not_found(format!("no history for {group:?}"));
        return Ok(protocol::error_frame(Some(id), &err));
    };
    let now = unix_millis();
    let kept: Vec<Kept> = reader
        .read(group, since + 1, Some(offset))
        .await?
        .into_iter()
        .filter(|e| e.epoch == epoch)
        .map(|e| Kept::of(&e, group))
        .filter(|k| !k.expired(state, now))
        .collect();
    let first_kept = kept.first().map_or(offset + 1, |k| k.offset);
    let frames: Vec<Frame> = kept.into_iter().map(|k| k.frame).collect();
    let reply = HistoryReply {
        group,
        epoch: &epoch,
        offset,
        complete: since + 1 >= first_kept,
        frames: frames.iter().filter_map(raw_frame).collect(),
    };
    Ok(reply.to_frame(id))
}
