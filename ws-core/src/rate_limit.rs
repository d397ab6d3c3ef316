//! `RateLimiter`: a token bucket per client.
//!
//! The bucket holds up to `burst` tokens and refills at `rate` tokens per second; every frame a client sends
//! takes one, rejected frames included (a client flooding invalid frames is still flooding). An empty bucket
//! means the client is over its limit and the server closes it with 1008. The limiter takes the current time
//! as an argument so tests can drive it with a made-up clock.

#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `None` when `rate` is 0 (no limit).
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Option<Self> {
        (rate > 0).then(|| Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        })
    }

    /// Takes one token; `false` when none is left.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until one more token is available.
    #[cfg(test)]
    fn wait_time(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rate_disables() {
        assert!(RateLimiter::new(0, 10, Instant::now()).is_none());
    }

    #[test]
    fn burst_then_refill_at_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 5, t0).unwrap();
        for _ in 0..5 {
            assert!(rl.try_acquire(t0));
        }
        assert!(!rl.try_acquire(t0), "burst exhausted");
        assert_eq!(rl.wait_time(), Duration::from_millis(100));
        assert!(!rl.try_acquire(t0 + Duration::from_millis(99)));
        assert!(rl.try_acquire(t0 + Duration::from_millis(100)));
        assert!(!rl.try_acquire(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(100, 3, t0).unwrap();
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(rl.try_acquire(later));
        }
        assert!(!rl.try_acquire(later));
    }

    #[test]
    fn steady_rate_is_sustained() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(100, 1, t0).unwrap();
        // One message every 10 ms for ten simulated seconds stays within 100/s.
        for i in 1..=1000u64 {
            assert!(
                rl.try_acquire(t0 + Duration::from_millis(10 * i)),
                "message {i}"
            );
        }
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut rl = RateLimiter::new(1, 1, t0).unwrap();
        assert!(rl.try_acquire(t0));
        assert!(!rl.try_acquire(t0 - Duration::from_secs(1)));
    }
}
