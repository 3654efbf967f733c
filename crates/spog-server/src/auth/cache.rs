//! Callers resolved in the last moment: a burst of requests with one credential costs one
//! database lookup instead of one each. Changes that take rights away (logout, revocation,
//! role, user and password changes) clear it on their instance at once; other instances
//! see them within the time to live (`auth_cache_ttl`, zero turns the cache off).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Principal;

/// Beyond this many live credentials the cache starts over rather than grow.
const MAX_ENTRIES: usize = 10_000;

pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Principal)>>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Principal> {
        let entries = self.entries.lock();
        let (at, principal) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| principal.clone())
    }

    pub fn put(&self, key: String, principal: &Principal) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), principal.clone()));
    }

    /// Forgets every caller: something that grants or takes away rights has changed.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}
