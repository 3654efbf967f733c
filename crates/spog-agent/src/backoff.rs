//! Waits between connection attempts (SPEC 12.2): a random delay in
//! `[0, min(max, 1 s · 2^attempt)]` (full jitter), so that a fleet that lost its hub at once
//! does not come back at once.

use std::time::Duration;

/// A connection that lived this long starts the attempts afresh.
pub const HEALTHY_CONNECTION: Duration = Duration::from_secs(60);

pub struct Backoff {
    attempt: u32,
    max: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self::with_rng(max, fastrand::Rng::new())
    }

    pub fn with_rng(max: Duration, rng: fastrand::Rng) -> Self {
        Self {
            attempt: 0,
            max,
            rng,
        }
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let exponential = Duration::from_secs(1u64 << self.attempt.min(32));
        exponential.min(self.max)
    }

    /// The delay before the next attempt; each call counts one more failed attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling().as_millis() as u64;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(self.rng.u64(0..=ceiling))
    }

    /// After a connection that lived `HEALTHY_CONNECTION`, or when the hub asks for a prompt
    /// reconnect (1001).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_doubling_ceiling_capped_at_the_maximum() {
        let mut backoff = Backoff::with_rng(Duration::from_secs(30), fastrand::Rng::with_seed(7));
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let ceiling = backoff.ceiling();
                let delay = backoff.next_delay();
                assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
                ceiling.as_secs()
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 30, 30, 30]);
        for _ in 0..1_000 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
    }

    #[test]
    fn delays_are_spread_over_the_whole_range() {
        let mut backoff = Backoff::with_rng(Duration::from_secs(8), fastrand::Rng::with_seed(1));
        for _ in 0..3 {
            backoff.next_delay();
        }
        let delays: Vec<Duration> = (0..2_000).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().any(|d| *d < Duration::from_secs(1)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(7)));
    }

    #[test]
    fn a_reset_starts_again_from_one_second() {
        let mut backoff = Backoff::with_rng(Duration::from_secs(30), fastrand::Rng::with_seed(3));
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(30));
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::with_rng(Duration::from_secs(3600), fastrand::Rng::with_seed(5));
        for _ in 0..10_000 {
            assert!(backoff.next_delay() <= Duration::from_secs(3600));
        }
    }
}
