//! The write task: drains the send queue in batches (every queued frame in one vectored write, after
//! `write_delay` when it is set), writes the protocol layer's replies between them, pings, and watches
//! the pong deadline.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use super::outgoing::SocketWriter;
use crate::client::Client;
use crate::close::{self, CloseCode};
use crate::member::Abort;
use crate::send_queue::{Stamp, Taken};
use crate::session::{Event, Session};
use crate::stats::bump;

/// Frames written per flush at most; bounds the time between two checks of the abort signal.
const BATCH: usize = 64;
/// One write batch in this many has its queue lag recorded: a fan-out to thousands of clients writes
/// millions of batches a second, and reading the clock and updating the histogram for each cost a fifth
/// of a core in the fan-out benchmark.
const LAG_SAMPLE: u32 = 16;
/// How long a best-effort close to a dropped slow consumer may take.
const SLOW_CLOSE_GRACE: Duration = Duration::from_millis(100);

enum WriteError {
    Timeout,
    Io,
    /// The client was dropped while a write was blocked.
    Aborted,
}

pub(super) fn close_message(code: CloseCode, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: WsCloseCode::from(u16::from(code)),
        reason: reason.into(),
    }))
}

/// How the write task ended: the write half, and whether the socket should be reset rather than closed.
pub(super) struct Ended {
    pub(super) writer: SocketWriter,
    /// The connection was given up on (dropped, timed out) and its peer could not take a close frame.
    pub(super) reset: bool,
}

pub(super) async fn run(mut writer: SocketWriter, client: Client) -> Ended {
    write_until_end(&mut writer, &client).await;
    let server = client.server();
    let metrics = server.metrics();
    let reset = match client.member().abort_reason() {
        None => false,
        // The client closed: the reply to its close frame, handed over by the protocol layer, goes out
        // within `close_timeout`, the bound on the closing handshake (a peer that sent its close and stopped
        // reading does not hold the connection for a whole `write_timeout`).
        Some(Abort::Finished) => {
            let close_timeout = server.node().config.close_timeout;
            let _ = tokio::time::timeout(close_timeout, writer.write()).await;
            false
        }
        // A slow consumer is told why (1008), if its socket takes the close frame within a short grace.
        Some(Abort::SlowConsumer) => {
            metrics.server_disconnect(close::POLICY_VIOLATION.into());
            writer.push(close_message(close::POLICY_VIOLATION, "send queue full"));
            let sent = tokio::time::timeout(SLOW_CLOSE_GRACE, writer.write()).await;
            !matches!(sent, Ok(Ok(())))
        }
        Some(Abort::PongTimeout | Abort::WriteTimeout | Abort::ShutdownDeadline) => {
            metrics.server_disconnect(close::ABNORMAL);
            true
        }
    };
    Ended { writer, reset }
}

async fn write_until_end(writer: &mut SocketWriter, client: &Client) {
    let server = client.server();
    let frames = client.member().queue();
    let config = &server.node().config;
    let start = Instant::now();
    let mut ping = tokio::time::interval_at(start + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pong_check = tokio::time::sleep_until(start + config.pong_timeout);
    tokio::pin!(pong_check);
    // The two stop signals are awaited by futures built once, not once per batch: with thousands of
    // clients, every broadcast wakes every write task, and this loop is the fan-out's hot path.
    let aborted = client.member().aborted();
    tokio::pin!(aborted);
    let close_requested = client.member().close_requested();
    tokio::pin!(close_requested);
    let replies = writer.replies().clone();
    let session = client.member().session().cloned();
    let mut watching = session.is_some();
    let mut session_event = next_session_event(session.as_ref(), config.session_grace);
    let mut batches: u32 = 0;

    loop {
        let outcome = tokio::select! {
            biased;
            () = &mut aborted => return,
            () = &mut close_requested => {
                write_close(writer, client, aborted.as_mut()).await;
                return;
            }
            () = replies.ready() => write_batch(writer, None, client, aborted.as_mut()).await,
            taken = frames.recv_many(writer, BATCH) => {
                let Some(mut taken) = taken else {
                    return;
                };
                let delay = config.write_delay;
                if !delay.is_zero() && taken.frames < BATCH {
                    // Frames queued during the delay do not wake this task: it is not waiting on the queue.
                    tokio::select! {
                        biased;
                        () = &mut aborted => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    taken = taken.and(frames.try_recv_many(writer, BATCH - taken.frames));
                }
                if batches.is_multiple_of(LAG_SAMPLE) {
                    let lag = Stamp::now().millis_since(taken.oldest);
                    server.metrics().send_queue_lag.observe(f64::from(lag) / 1000.0);
                }
                batches = batches.wrapping_add(1);
                write_batch(writer, Some(taken), client, aborted.as_mut()).await
            }
            _ = ping.tick() => send_ping(writer, config.write_timeout).await,
            event = &mut session_event, if watching => {
                match event {
                    Event::Expired => {
                        watching = false;
                        bump(&server.node().stats.sessions_expired);
                        client.member().close(crate::session::TOKEN_EXPIRED, "token expired");
                    }
                    Event::MembershipEnded(group) => {
                        if client.leave(&group) {
                            let _ = client.send(crate::session::left_frame(&group, "expired"));
                        }
                        session_event = next_session_event(session.as_ref(), config.session_grace);
                    }
                }
                Ok(())
            }
            () = &mut pong_check => {
                let deadline = client.member().last_pong() + config.pong_timeout;
                if deadline <= Instant::now().into_std() {
                    bump(&server.node().stats.pong_timeouts);
                    client.member().abort(Abort::PongTimeout);
                    return;
                }
                pong_check.as_mut().reset(deadline.into());
                Ok(())
            }
        };
        if let Err(err) = outcome {
            give_up(client, err);
            return;
        }
    }
}

/// What the connection's session waits for next; never, without a session.
fn next_session_event(
    session: Option<&Arc<Session>>,
    grace: Duration,
) -> Pin<Box<dyn Future<Output = Event> + Send>> {
    match session {
        Some(session) => Box::pin(session.clone().next_event(grace)),
        None => Box::pin(std::future::pending()),
    }
}

/// Writes what was queued before the close, then the close frame. About one queue's worth goes first (the
/// batch that passes `send_queue_max_bytes` is the last), so a busy broadcaster cannot keep the close
/// waiting.
async fn write_close(
    writer: &mut SocketWriter,
    client: &Client,
    mut aborted: Pin<&mut impl Future<Output = ()>>,
) {
    let server = client.server();
    let config = &server.node().config;
    let (code, reason) = client
        .member()
        .take_close_request()
        .unwrap_or((close::NORMAL, String::new()));
    server.metrics().server_disconnect(code.into());
    let frames = client.member().queue();
    let mut budget = config.send_queue_max_bytes;
    while budget > 0 {
        let Some(taken) = frames.try_recv_many(writer, BATCH) else {
            break;
        };
        budget = budget.saturating_sub(taken.bytes);
        if write_batch(writer, Some(taken), client, aborted.as_mut())
            .await
            .is_err()
        {
            return;
        }
    }
    writer.push(close_message(code, &reason));
    let _ = tokio::time::timeout(config.write_timeout, writer.write()).await;
}

async fn send_ping(writer: &mut SocketWriter, write_timeout: Duration) -> Result<(), WriteError> {
    writer.push(WsMessage::Ping(Default::default()));
    match tokio::time::timeout(write_timeout, writer.write()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteError::Io),
        Err(_) => Err(WriteError::Timeout),
    }
}

/// Ends the connection after a failed write.
fn give_up(client: &Client, err: WriteError) {
    match err {
        WriteError::Timeout => {
            bump(&client.server().node().stats.write_timeouts);
            client.member().abort(Abort::WriteTimeout);
        }
        WriteError::Io => {
            client.member().abort(Abort::Finished);
        }
        WriteError::Aborted => {}
    }
}

/// Writes the batch `taken` from the send queue into `writer` (none: only the protocol layer's replies),
/// and the replies before it. A client dropped meanwhile (a slow consumer whose socket is full) stops the
/// write at once rather than after `write_timeout`, so its connection and buffers go without delay.
async fn write_batch(
    writer: &mut SocketWriter,
    taken: Option<Taken>,
    client: &Client,
    aborted: Pin<&mut impl Future<Output = ()>>,
) -> Result<(), WriteError> {
    let server = client.server();
    let written = {
        let mut write = pin!(writer.write());
        // Most batches go out in their first poll: the timer is armed only for a write the socket did not
        // take at once, since registering and cancelling one per batch is a cost every delivery of a
        // fan-out pays.
        match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            Poll::Ready(done) => Some(Ok(done)),
            Poll::Pending => tokio::select! {
                biased;
                written = tokio::time::timeout(server.node().config.write_timeout, write) => Some(written),
                () = aborted => None,
            },
        }
    };
    if let Some(taken) = taken {
        client.member().queue().release(taken.bytes);
    }
    let Some(written) = written else {
        return Err(WriteError::Aborted);
    };
    match written {
        Ok(Ok(())) => {
            let count = taken.map_or(0, |taken| taken.frames as u64);
            server
                .node()
                .stats
                .messages_sent
                .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(_)) => Err(WriteError::Io),
        Err(_) => Err(WriteError::Timeout),
    }
}
