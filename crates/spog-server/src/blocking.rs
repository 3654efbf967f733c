//! Blocking work (file reads and writes, encoding, hashing) off the async threads, on a
//! bounded share of tokio's blocking pool. Each call is short and never waits on a client:
//! callers hand the result to the client afterwards, on the async side, so a client that
//! stops reading holds no thread. Past the bound, callers wait for a permit asynchronously.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Blocking calls in flight at once per instance.
pub const PERMITS: usize = 32;

#[derive(Clone)]
pub struct Blocking {
    permits: Arc<Semaphore>,
}

impl Default for Blocking {
    fn default() -> Self {
        Self::new(PERMITS)
    }
}

impl Blocking {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free; a panic in it resumes here.
    /// The future owns what it needs, so it may outlive `self`.
    pub fn run<T, W>(&self, work: W) -> impl Future<Output = T> + Send + 'static + use<T, W>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let permits = self.permits.clone();
        async move {
            let permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let joined = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                work()
            })
            .await;
            match joined {
                Ok(value) => value,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Cancelled: the runtime is shutting down and drops this future with the rest.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Permits free now (for tests and health).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}
