//! Streamed downloads (recordings, audit exports) are capped per credential: each holds a
//! slot until its body is done or dropped, and one more than `max_downloads_per_caller` is
//! answered 429. With the transport's write timeout, a caller that opens downloads and never
//! reads them holds a few slots for a bounded time, and nothing of anyone else's.

use std::collections::HashMap;
use std::sync::Arc;

use futures::Stream;
use parking_lot::Mutex;

use crate::auth::{Auth, Credential};
use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Downloads {
    per_caller: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One download in progress; its slot frees when this is dropped.
pub struct DownloadSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Downloads {
    pub fn new(per_caller: usize) -> Self {
        Self {
            per_caller,
            open: Arc::default(),
        }
    }

    /// A slot for the caller's next download, or 429 when they have as many as allowed.
    pub fn start(&self, auth: &Auth) -> ApiResult<DownloadSlot> {
        let caller = match &auth.principal.credential {
            Credential::Session { id, .. } => format!("session {id}"),
            Credential::ApiToken(id) => format!("token {id}"),
            Credential::Agent { id, .. } => format!("agent {id}"),
        };
        let mut open = self.open.lock();
        let count = open.entry(caller.clone()).or_default();
        if *count >= self.per_caller {
            return Err(ApiError::LimitReached(format!(
                "{} downloads are already in progress for this credential; wait for one to finish",
                self.per_caller
            )));
        }
        *count += 1;
        Ok(DownloadSlot {
            open: self.open.clone(),
            caller,
        })
    }

    /// Downloads in progress for all callers.
    pub fn in_progress(&self) -> usize {
        self.open.lock().values().sum()
    }
}

impl DownloadSlot {
    /// `body`, holding the slot until it ends or is dropped.
    pub fn hold<S: Stream + Send + 'static>(self, body: S) -> impl Stream<Item = S::Item> + Send {
        use futures::StreamExt;
        body.map(move |item| {
            let _held = &self;
            item
        })
    }
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.caller);
            }
        }
    }
}
