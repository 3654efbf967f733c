//! Slows password guessing before any password is hashed. Three counters see each attempt:
//!
//! - the **pair** (client address, email): a few free failures, then a delay that doubles
//!   with each further one, up to a minute: a guesser at one address gets about one guess a
//!   minute at one account, and nobody is locked out for good;
//! - the **source** (client address; IPv6 by /64): limits spraying many emails from one place;
//! - the **email** (from every address): limits a guesser spread over many addresses.
//!
//! A pair that logged in successfully is *familiar* for a while and is exempt from the
//! source's and the email's counters, so neither a flood from elsewhere nor one from the same
//! load balancer address aimed at other accounts can lock a user out. The client address is
//! the one [`super::client`] decided (through `trusted_proxies`).
//!
//! Every attempt is reserved (counted as a failure) before its password is checked, so a
//! hundred parallel guesses are decided one after another and most are refused unhashed; a
//! success, or an attempt refused for lack of a free core, gives its reservation back. The
//! counters live in the database (shared by instances, kept across restarts, swept once
//! expired); each instance remembers the pairs it refused, until their wait ends, so a flood
//! at a blocked pair costs no database work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ipnet::Ipv6Net;
use parking_lot::Mutex;
use spog_core::Timestamp;
use spog_core::validate::Email;
use spog_store::identity::login_throttle::{self, Counter};
use spog_store::{Store, StoreResult};

use super::password::Lane;
use crate::error::{ApiError, ApiResult};

/// How one counter slows attempts down.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Failures allowed before any delay.
    pub free: i64,
    /// The delay after the first failure beyond the free ones; it doubles with each further one.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A counter with no failure for this long starts over.
    pub window: Duration,
}

impl Limit {
    /// The wait imposed after the `failures`th failure, if any.
    pub fn delay(&self, failures: i64) -> Option<Duration> {
        let beyond = failures - self.free;
        if beyond <= 0 {
            return None;
        }
        let doublings = u32::try_from(beyond - 1).unwrap_or(u32::MAX).min(30);
        Some(
            self.first_delay
                .saturating_mul(1 << doublings)
                .min(self.max_delay),
        )
    }
}

const MINUTE: Duration = Duration::from_secs(60);

pub const PAIR: Limit = Limit {
    free: 5,
    first_delay: Duration::from_secs(1),
    max_delay: MINUTE,
    window: Duration::from_secs(15 * 60),
};
pub const SOURCE: Limit = Limit {
    free: 20,
    first_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(15 * 60),
    window: Duration::from_secs(15 * 60),
};
pub const EMAIL: Limit = Limit {
    free: 20,
    first_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(15 * 60),
    window: Duration::from_secs(15 * 60),
};
/// How long a successful pair stays familiar.
pub const FAMILIAR_FOR: Duration = Duration::from_secs(30 * 86_400);

/// Most refused pairs remembered per instance.
const REMEMBERED: usize = 10_000;
/// Expired counters are swept at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LoginThrottle {
    /// Pairs refused until then, by pair key.
    refused: Mutex<HashMap<String, Timestamp>>,
    last_sweep: AtomicI64,
}

/// An attempt allowed to check its password; its counters already count it as failed.
#[must_use = "a success or an unchecked attempt gives its reservation back"]
pub struct Attempt {
    pair: String,
    /// The source's and email's counters, when they counted this attempt.
    others: Vec<String>,
}

impl Attempt {
    /// Whether this place logged in as this email before (and so hashes in its own lane).
    pub fn lane(&self) -> Lane {
        if self.others.is_empty() {
            Lane::Familiar
        } else {
            Lane::Anyone
        }
    }
}

struct Keys {
    pair: String,
    source: String,
    email: String,
}

impl Keys {
    fn new(source: Option<IpAddr>, email: &Email) -> Self {
        let source = source.map_or_else(|| "unknown".to_owned(), source_key);
        let email = email.as_str().to_lowercase();
        Self {
            pair: format!("p:{source}|{email}"),
            source: format!("s:{source}"),
            email: format!("e:{email}"),
        }
    }
}

/// An address as counted: IPv6 clients usually hold a whole /64, so it counts as one.
fn source_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => Ipv6Net::new(v6, 64)
                .map(|net| net.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        },
    }
}

fn wait_until(until: Timestamp, now: Timestamp) -> Duration {
    Duration::from_micros(u64::try_from(until.micros() - now.micros()).unwrap_or(0))
}

impl LoginThrottle {
    /// Reserves an attempt to log in as `email` from `source`, or refuses it (429 with the
    /// wait) when one of its counters says to wait.
    pub async fn reserve(
        &self,
        store: &Store,
        source: Option<IpAddr>,
        email: &Email,
        now: Timestamp,
    ) -> ApiResult<Attempt> {
        let keys = Keys::new(source, email);
        if let Some(until) = self.refused.lock().get(&keys.pair).copied()
            && until > now
        {
            return Err(ApiError::RateLimited(wait_until(until, now)));
        }
        self.sweep_now_and_then(store, now);
        let all = [keys.pair.clone(), keys.source.clone(), keys.email.clone()];
        // A first look without the write lock: a flood of refused attempts writes nothing.
        let mut conn = store.conn().await?;
        let seen = login_throttle::peek(&mut conn, &all).await?;
        drop(conn);
        if let Some(until) = blocked_until(&keys, &seen, now) {
            self.remember_refusal(keys.pair, until, now);
            return Err(ApiError::RateLimited(wait_until(until, now)));
        }
        let mut tx = store.begin().await?;
        let counters = login_throttle::lock(&mut tx, &all).await?;
        // Decided again under the lock: parallel attempts are decided one after another.
        if let Some(until) = blocked_until(&keys, &counters, now) {
            drop(tx);
            self.remember_refusal(keys.pair, until, now);
            return Err(ApiError::RateLimited(wait_until(until, now)));
        }
        let find = |key: &str| counters.iter().find(|c| c.key == key).cloned();
        let (Some(mut pair), Some(source), Some(email)) =
            (find(&keys.pair), find(&keys.source), find(&keys.email))
        else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "a throttle counter was not created"
            )));
        };
        let familiar = pair.familiar_until > now;
        let mut counted = vec![(&mut pair, PAIR)];
        let (mut source, mut email) = (source, email);
        if !familiar {
            counted.push((&mut source, SOURCE));
            counted.push((&mut email, EMAIL));
        }
        for (counter, limit) in counted {
            count_failure(counter, limit, now);
            login_throttle::save(&mut tx, counter).await?;
        }
        tx.commit_unaudited().await?;
        Ok(Attempt {
            pair: keys.pair,
            others: if familiar {
                Vec::new()
            } else {
                vec![keys.source, keys.email]
            },
        })
    }

    /// The password was right: the pair starts over and becomes familiar, and the source's
    /// and email's counters give the reservation back.
    pub async fn succeeded(&self, store: &Store, attempt: Attempt, now: Timestamp) {
        self.refused.lock().remove(&attempt.pair);
        let result = Self::give_back(store, &attempt, now, true).await;
        if let Err(error) = result {
            tracing::warn!(%error, "recording a successful login in the throttle");
        }
    }

    /// The password could not be checked (no core was free): the attempt does not count.
    pub async fn unchecked(&self, store: &Store, attempt: Attempt, now: Timestamp) {
        if let Err(error) = Self::give_back(store, &attempt, now, false).await {
            tracing::warn!(%error, "giving back a login reservation");
        }
    }

    async fn give_back(
        store: &Store,
        attempt: &Attempt,
        now: Timestamp,
        succeeded: bool,
    ) -> StoreResult<()> {
        let mut keys = attempt.others.clone();
        keys.push(attempt.pair.clone());
        let mut tx = store.begin().await?;
        for mut counter in login_throttle::lock(&mut tx, &keys).await? {
            if succeeded && counter.key == attempt.pair {
                counter.failures = 0;
                counter.blocked_until = Timestamp::from_micros(0);
                counter.familiar_until = now.plus(FAMILIAR_FOR);
            } else {
                counter.failures = (counter.failures - 1).max(0);
            }
            counter.expires_at = expiry(&counter, PAIR.window.max(SOURCE.window));
            login_throttle::save(&mut tx, &counter).await?;
        }
        tx.commit_unaudited().await
    }

    fn remember_refusal(&self, pair: String, until: Timestamp, now: Timestamp) {
        let mut refused = self.refused.lock();
        if refused.len() >= REMEMBERED {
            refused.retain(|_, at| *at > now);
            if refused.len() >= REMEMBERED {
                refused.clear();
            }
        }
        refused.insert(pair, until);
    }

    /// Deletes expired counters, at most once a minute per instance, off the request's path.
    fn sweep_now_and_then(&self, store: &Store, now: Timestamp) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.micros() - last >= SWEEP_EVERY.as_micros() as i64;
        if !due
            || self
                .last_sweep
                .compare_exchange(last, now.micros(), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = store.clone();
        tokio::spawn(async move {
            let swept = async {
                let mut tx = store.begin().await?;
                let swept = login_throttle::sweep(&mut tx, now).await?;
                tx.commit_unaudited().await?;
                StoreResult::Ok(swept)
            };
            match swept.await {
                Ok(0) => {}
                Ok(swept) => tracing::debug!(swept, "expired login throttle counters"),
                Err(error) => tracing::warn!(%error, "sweeping login throttle counters"),
            }
        });
    }
}

/// Until when the counters that apply to an attempt (the pair's, and unless the pair is
/// familiar the source's and email's) refuse it, if they do.
fn blocked_until(keys: &Keys, counters: &[Counter], now: Timestamp) -> Option<Timestamp> {
    let of = |key: &str| counters.iter().find(|c| c.key == key);
    let familiar = of(&keys.pair).is_some_and(|pair| pair.familiar_until > now);
    let mut applicable = vec![&keys.pair];
    if !familiar {
        applicable.extend([&keys.source, &keys.email]);
    }
    applicable
        .into_iter()
        .filter_map(|key| of(key))
        .map(|c| c.blocked_until)
        .filter(|until| *until > now)
        .max()
}

/// Counts one more failure: a counter quiet for its window starts over; past the free
/// failures the next attempt must wait.
fn count_failure(counter: &mut Counter, limit: Limit, now: Timestamp) {
    if counter.last_failure_at.plus(limit.window) <= now {
        counter.failures = 0;
    }
    counter.failures += 1;
    counter.last_failure_at = now;
    if let Some(delay) = limit.delay(counter.failures) {
        counter.blocked_until = now.plus(delay);
    }
    counter.expires_at = expiry(counter, limit.window);
}

/// A counter is kept while it counts, blocks, or keeps a pair familiar.
fn expiry(counter: &Counter, window: Duration) -> Timestamp {
    counter
        .last_failure_at
        .plus(window)
        .max(counter.blocked_until)
        .max(counter.familiar_until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_past_the_free_failures_up_to_the_cap() {
        assert_eq!(PAIR.delay(5), None);
        assert_eq!(PAIR.delay(6), Some(Duration::from_secs(1)));
        assert_eq!(PAIR.delay(7), Some(Duration::from_secs(2)));
        assert_eq!(PAIR.delay(9), Some(Duration::from_secs(8)));
        assert_eq!(PAIR.delay(12), Some(MINUTE));
        assert_eq!(PAIR.delay(i64::MAX), Some(MINUTE));
        assert_eq!(SOURCE.delay(1_000), Some(Duration::from_secs(15 * 60)));
    }

    #[test]
    fn a_quiet_counter_starts_over() {
        let start = Timestamp::now();
        let mut counter = Counter {
            key: "p:x".into(),
            failures: 0,
            last_failure_at: Timestamp::from_micros(0),
            blocked_until: Timestamp::from_micros(0),
            familiar_until: Timestamp::from_micros(0),
            expires_at: Timestamp::from_micros(0),
        };
        for _ in 0..6 {
            count_failure(&mut counter, PAIR, start);
        }
        assert_eq!(counter.failures, 6);
        assert_eq!(counter.blocked_until, start.plus(Duration::from_secs(1)));
        assert_eq!(counter.expires_at, start.plus(PAIR.window));
        let later = start.plus(PAIR.window);
        count_failure(&mut counter, PAIR, later);
        assert_eq!(counter.failures, 1);
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_eq!(source_key(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped), "192.0.2.7");
    }
}
