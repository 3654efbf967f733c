//! Password hashing with argon2id, off the async threads and bounded: each hash takes about
//! 19 MiB and a core for tens of milliseconds, so at most one per core runs at once, a caller
//! waits briefly for its turn and is otherwise refused (429 with `Retry-After`) instead of
//! queueing without end. A queue longer than the cores could serve within that wait is not
//! joined at all: the caller is refused at once, so a flood's excess neither holds
//! connections for the whole wait nor stands ahead of the next good login. Logins from a familiar place (see the throttle) have a lane of their
//! own beside it, so that a flood of guesses from many addresses cannot crowd them out.
//! Passwords longer than [`MAX_PASSWORD_BYTES`] are refused unhashed.
//!
//! Hashes run on threads of their own, one per permit, each computing in one block of
//! memory it keeps: allocating and freeing 19 MiB per hash left the allocator holding
//! hundreds of megabytes after a flood, never returned.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use spog_core::FieldError;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// Longest password hashed or checked, in bytes; the password rules allow far less.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// How long a caller waits for a free core before it is told to come back.
const WAIT: Duration = Duration::from_secs(2);
/// What a refused caller is told to wait.
const COME_BACK: Duration = Duration::from_secs(1);
/// Callers that may wait per core: about what a core hashes within [`WAIT`] on a loaded
/// machine; whoever comes beyond them would only time out.
const WAITING_PER_CORE: usize = 8;

pub struct Hashing {
    threads: Threads,
    permits: Semaphore,
    /// Callers in the common lane waiting for a permit, and how many may.
    waiting: AtomicUsize,
    max_waiting: usize,
    /// The familiar logins' own lane.
    familiar: Semaphore,
    wait: Duration,
    performed: AtomicU64,
}

/// Who waits for a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Anyone,
    /// A login from a place that logged in as this user before.
    Familiar,
}

impl Default for Hashing {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores, WAIT)
    }
}

/// Refuses a password too long to hash; `field` names it in the 422.
pub fn check_length(field: &str, password: &str) -> Result<(), FieldError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

impl Hashing {
    pub fn new(at_once: usize, wait: Duration) -> Self {
        let at_once = at_once.max(1);
        Self {
            // One thread per permit, the familiar lane's included.
            threads: Threads::start(at_once + 1),
            permits: Semaphore::new(at_once),
            waiting: AtomicUsize::new(0),
            max_waiting: at_once * WAITING_PER_CORE,
            familiar: Semaphore::new(1),
            wait,
            performed: AtomicU64::new(0),
        }
    }

    /// How many hashes and checks this process has run (tests and metrics).
    pub fn performed(&self) -> u64 {
        self.performed.load(Ordering::Relaxed)
    }

    /// Runs `work` on the blocking pool once a permit is free, or refuses with 429.
    async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let in_line = match lane {
            Lane::Anyone => Some(self.join_line()?),
            Lane::Familiar => None,
        };
        let acquire = async {
            match lane {
                Lane::Anyone => self.permits.acquire().await,
                Lane::Familiar => tokio::select! {
                    permit = self.permits.acquire() => permit,
                    permit = self.familiar.acquire() => permit,
                },
            }
        };
        let permit = tokio::time::timeout(self.wait, acquire)
            .await
            .map_err(|_| ApiError::RateLimited(COME_BACK))?
            .map_err(ApiError::internal)?;
        drop(in_line);
        self.performed.fetch_add(1, Ordering::Relaxed);
        let done = self.threads.run(work).await;
        drop(permit);
        done
    }

    /// A place in the common lane's line, or 429 at once when the line is full.
    fn join_line(&self) -> ApiResult<InLine<'_>> {
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let place = InLine(&self.waiting);
        if ahead >= self.max_waiting && self.permits.available_permits() == 0 {
            return Err(ApiError::RateLimited(COME_BACK));
        }
        Ok(place)
    }

    pub async fn hash(&self, password: String) -> ApiResult<String> {
        check_length("password", &password)?;
        self.run(Lane::Anyone, move || {
            new_hash(&password)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing a password: {e}")))
        })
        .await?
    }

    /// Which of `stored` (in order) `password` matches, checked side by side so that the
    /// answer takes one check's time however many there are; with none it still spends the
    /// time of a check, so response times do not reveal which emails exist.
    pub async fn verify_any(
        &self,
        lane: Lane,
        password: String,
        stored: Vec<Option<String>>,
    ) -> ApiResult<Option<usize>> {
        check_length("password", &password)?;
        let stored = if stored.is_empty() {
            vec![None]
        } else {
            stored
        };
        let checks = stored.into_iter().map(|hash| {
            let password = password.clone();
            self.run(lane, move || check(&password, hash))
        });
        let results = futures::future::join_all(checks).await;
        let mut matched = None;
        for (index, result) in results.into_iter().enumerate() {
            if result? && matched.is_none() {
                matched = Some(index);
            }
        }
        Ok(matched)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Long-lived hashing threads; they end when the [`Hashing`] is dropped.
struct Threads {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Threads {
    fn start(count: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(parking_lot::Mutex::new(queue));
        for _ in 0..count {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("spog-hashing".to_owned())
                .spawn(move || {
                    loop {
                        let job = match queue.lock().recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        job();
                    }
                })
                .expect("starting a hashing thread");
        }
        Self { jobs }
    }

    /// Runs `work` on a hashing thread; callers hold a permit, so it never waits long.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads stopped")))?;
        result.await.map_err(ApiError::internal)
    }
}

thread_local! {
    /// The hashing thread's working memory, kept between hashes.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Largest memory a stored hash may ask for: four times today's parameters.
const MAX_BLOCKS: usize = 4 * Params::DEFAULT_M_COST as usize;

/// Argon2 of `password` and `salt` into `out`, in this thread's kept memory.
fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    MEMORY.with_borrow_mut(|memory| {
        let needed = params.block_count();
        if memory.len() < needed {
            memory.resize(needed, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..needed])
    })
}

/// A new argon2id hash (default parameters, random salt) in PHC string form.
fn new_hash(password: &str) -> argon2::password_hash::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buffer)?;
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(compute(
            &argon2,
            &params,
            password.as_bytes(),
            salt_bytes,
            out,
        )?)
    })?;
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

fn check(password: &str, stored: Option<String>) -> bool {
    let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
    let matches = || -> argon2::password_hash::Result<bool> {
        let parsed = PasswordHash::new(&stored)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
            return Ok(false);
        };
        if params.block_count() > MAX_BLOCKS {
            tracing::warn!("a stored password hash asks for more memory than allowed");
            return Ok(false);
        }
        let mut salt_buffer = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buffer)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let computed = Output::init_with(expected.len(), |out| {
            Ok(compute(
                &argon2,
                &params,
                password.as_bytes(),
                salt_bytes,
                out,
            )?)
        })?;
        // Output compares in constant time.
        Ok(computed == expected)
    };
    matches().unwrap_or(false) && stored != DUMMY_HASH
}

/// An argon2id hash of a random password nobody knows, with default parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3BvZ2R1bW15c2FsdA$2Y0Yd6bW5Yq3Cw6w9VxWcS8n4y0m0m5wXcX3VdXnYlM";

/// Leaves the line when the caller is served, refused or gone.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_only_against_its_own_hash() {
        let hashing = Hashing::default();
        let hash = hashing.hash("a long enough password".into()).await.unwrap();
        let other = hashing.hash("another long password".into()).await.unwrap();
        let found = hashing
            .verify_any(
                Lane::Anyone,
                "a long enough password".into(),
                vec![Some(other), None, Some(hash)],
            )
            .await
            .unwrap();
        assert_eq!(found, Some(2));
        let none = hashing
            .verify_any(Lane::Anyone, "anything".into(), vec![])
            .await
            .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn hashes_are_standard_argon2id_strings() {
        use argon2::PasswordVerifier;
        let hash = new_hash("a long enough password").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let parsed = PasswordHash::new(&hash).unwrap();
        let standard = Argon2::default();
        assert!(
            standard
                .verify_password(b"a long enough password", &parsed)
                .is_ok()
        );
        assert!(check("a long enough password", Some(hash.clone())));
        assert!(!check("another password", Some(hash)));
        assert!(!check("anything", None));
    }

    #[tokio::test]
    async fn overlong_passwords_are_refused_before_hashing() {
        let hashing = Hashing::default();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hashing.hash(long.clone()).await,
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            hashing.verify_any(Lane::Anyone, long, vec![None]).await,
            Err(ApiError::Validation(_))
        ));
        assert_eq!(hashing.performed(), 0);
    }

    #[tokio::test]
    async fn callers_beyond_the_cores_wait_briefly_then_are_told_to_come_back() {
        let hashing = std::sync::Arc::new(Hashing::new(1, Duration::from_millis(1)));
        let mut running = Vec::new();
        for _ in 0..8 {
            let hashing = hashing.clone();
            running.push(tokio::spawn(async move {
                hashing.hash("a long enough password".into()).await
            }));
        }
        let mut refused = 0;
        for task in running {
            match task.await.unwrap() {
                Ok(_) => {}
                Err(ApiError::RateLimited(wait)) => {
                    assert!(wait >= Duration::from_secs(1));
                    refused += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(refused >= 1, "one permit and a 1 ms wait refuse someone");
        assert_eq!(hashing.performed(), 8 - refused);
    }

    #[tokio::test]
    async fn callers_beyond_what_the_wait_could_serve_are_refused_at_once() {
        let hashing = std::sync::Arc::new(Hashing::new(1, Duration::from_secs(30)));
        let crowd = 1 + WAITING_PER_CORE + 20;
        let mut running = Vec::new();
        for _ in 0..crowd {
            let hashing = hashing.clone();
            running.push(tokio::spawn(async move {
                let started = std::time::Instant::now();
                let answer = hashing.hash("a long enough password".into()).await;
                (answer, started.elapsed())
            }));
        }
        let mut refused = 0;
        for task in running {
            let (answer, took) = task.await.unwrap();
            if let Err(ApiError::RateLimited(_)) = answer {
                refused += 1;
                assert!(took < Duration::from_secs(5), "refused without waiting");
            }
        }
        assert!(refused >= 20, "only {refused} refused");
        assert_eq!(hashing.performed(), (crowd - refused) as u64);
    }

    #[tokio::test]
    async fn a_familiar_login_passes_a_crowd_of_strangers() {
        let hashing = std::sync::Arc::new(Hashing::new(1, Duration::from_millis(300)));
        let mut strangers = Vec::new();
        for _ in 0..20 {
            let hashing = hashing.clone();
            strangers.push(tokio::spawn(async move {
                hashing
                    .verify_any(Lane::Anyone, "guess".into(), vec![None])
                    .await
            }));
        }
        tokio::task::yield_now().await;
        let familiar = hashing
            .verify_any(Lane::Familiar, "mine".into(), vec![None])
            .await;
        assert!(familiar.is_ok(), "{familiar:?}");
        for stranger in strangers {
            let _ = stranger.await.unwrap();
        }
    }
}
