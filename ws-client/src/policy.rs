//! Reconnection: the close-code policy and the backoff, the same as the TypeScript SDK's.

use std::time::Duration;

/// What the client does after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseDecision {
    /// Connect again after a backoff delay.
    Retry,
    /// Connect again after the longest delay.
    Slow,
    /// Stay closed.
    Stop,
}

/// The default answer to a close code: the client's own fault is not retried (1002, 1003, 1007, 1009,
/// 3409 another protocol version, a refused handshake 34xx but 3408 and 3429, and the application's
/// 4000–4999); 1008 and 3429 wait the longest delay; anything else (1001, 1006, 1011, 35xx) is retried.
///
/// ```
/// use ws_client::{CloseDecision, close_policy};
/// assert_eq!(close_policy(3409), CloseDecision::Stop);
/// assert_eq!(close_policy(1008), CloseDecision::Slow);
/// assert_eq!(close_policy(1006), CloseDecision::Retry);
/// ```
#[must_use]
pub fn close_policy(code: u16) -> CloseDecision {
    match code {
        1008 | 3429 => CloseDecision::Slow,
        1002 | 1003 | 1007 | 1009 => CloseDecision::Stop,
        3400..=3499 if code != 3408 => CloseDecision::Stop,
        4000..=4999 => CloseDecision::Stop,
        _ => CloseDecision::Retry,
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay bound.
    pub base: Duration,
    /// Largest delay bound.
    pub max: Duration,
    /// Attempts before staying closed (`None`: unlimited).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based): uniform in `[0, min(max, base * 2^attempt))`.
    pub(crate) fn delay(&self, attempt: u32, decision: CloseDecision) -> Duration {
        if decision == CloseDecision::Slow {
            return self.max;
        }
        let bound = self.base.saturating_mul(1 << attempt.min(30)).min(self.max);
        bound.mul_f64(crate::runtime::random())
    }
}
