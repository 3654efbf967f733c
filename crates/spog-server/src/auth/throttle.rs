//! Slows password guessing: after repeated failures for one email from one address, further
//! attempts are refused with 429 for a while, before any password is checked. Kept per
//! instance; with several instances an attacker gets a few more tries, never unlimited ones.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const MAX_FAILURES: usize = 10;
const WINDOW: Duration = Duration::from_secs(600);
/// Past this many tracked keys, expired ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl LoginThrottle {
    fn key(ip: Option<&str>, email: &str) -> (String, String) {
        (ip.unwrap_or("").to_owned(), email.to_lowercase())
    }

    /// Whether another attempt is allowed now.
    pub fn allows(&self, ip: Option<&str>, email: &str, now: Instant) -> bool {
        let mut failures = self.failures.lock();
        match failures.get_mut(&Self::key(ip, email)) {
            Some(times) => {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > WINDOW)
                {
                    times.pop_front();
                }
                times.len() < MAX_FAILURES
            }
            None => true,
        }
    }

    pub fn failed(&self, ip: Option<&str>, email: &str, now: Instant) {
        let mut failures = self.failures.lock();
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= WINDOW)
            });
        }
        failures
            .entry(Self::key(ip, email))
            .or_default()
            .push_back(now);
    }

    pub fn succeeded(&self, ip: Option<&str>, email: &str) {
        self.failures.lock().remove(&Self::key(ip, email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_lock_out_that_email_from_that_address_for_a_while() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.allows(Some("10.0.0.1"), "a@x.io", start));
            throttle.failed(Some("10.0.0.1"), "a@x.io", start);
        }
        assert!(!throttle.allows(Some("10.0.0.1"), "A@x.io", start));
        assert!(
            throttle.allows(Some("10.0.0.2"), "a@x.io", start),
            "another address"
        );
        assert!(
            throttle.allows(Some("10.0.0.1"), "b@x.io", start),
            "another email"
        );
        assert!(throttle.allows(
            Some("10.0.0.1"),
            "a@x.io",
            start + WINDOW + Duration::from_secs(1)
        ));
        throttle.succeeded(Some("10.0.0.1"), "a@x.io");
        assert!(throttle.allows(Some("10.0.0.1"), "a@x.io", start));
    }
}
