//! What the publisher and the subscriber have in common: connecting to Redis, backing off between
//! attempts, stopping, and being restarted after a panic.
//!
//! The two tasks are separate because a Redis connection in subscribe mode can run no other command, and
//! because a slow publish must not hold up delivering what other nodes sent. Each reconnects on its own
//! with jittered exponential backoff. The subscriber also listens for this node's own heartbeats: when they
//! stop arriving, the link is broken somewhere even if no socket reported an error, and it reconnects.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::FutureExt;
use redis::RedisError;
use tokio::sync::watch;

use super::conn::{self, Conn};
use super::shared::Shared;

/// How long a leaving node waits for Redis to take its goodbye.
pub(super) const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Full-jitter exponential backoff: the ceiling doubles per failure, the wait is drawn below it.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            ceiling: min,
        }
    }

    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = rand::random_range(self.min..=self.ceiling);
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }

    pub(super) fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

/// Resolves when the backplane is closed or dropped.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits `delay`; `true` if the backplane was closed meanwhile.
pub(super) async fn wait_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = stopped(stop) => true,
    }
}

/// A connection for commands (no subscriptions).
pub(super) async fn connect(shared: &Shared) -> Result<Conn, RedisError> {
    conn::connect(
        &shared.config,
        None::<fn(redis::PushInfo) -> Result<(), ()>>,
    )
    .await
}

/// Runs a task of the link again whenever it panics (a bug, or a packet no check anticipated), so the
/// link cannot die silently while `/stats` still says `connected`; returns once the task ends normally.
pub(super) async fn supervise<'a, F, Fut>(shared: &Shared, name: &str, mut task: F)
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = ()> + 'a,
{
    loop {
        let Err(panic) = AssertUnwindSafe(task()).catch_unwind().await else {
            return;
        };
        shared.link.publisher_up.store(false, Relaxed);
        shared.link.subscriber_up.store(false, Relaxed);
        shared.counters.task_restarts.fetch_add(1, Relaxed);
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(target: "ws_core::backplane", task = name, panic = %text, "redis: task panicked; restarting it");
        tokio::time::sleep(shared.config.reconnect_min).await;
    }
}
