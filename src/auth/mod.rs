//! Passwords: verification of every hash format OTRS, Znuny and OTOBO wrote ([`hash`]), new
//! hashes as argon2id, the password policy ([`policy`]); and the one-time passwords of the
//! second factor ([`totp`]). Hashing runs on dedicated threads, off the async runtime, in a
//! bounded queue ([`HASH_QUEUE`]); a password longer than [`hash::PASSWORD_BYTES`] is refused
//! before any hashing.

pub mod hash;
pub mod policy;
pub mod totp;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use hash::Argon2Params;

/// How many hashing jobs may wait for a hashing thread, beyond those running. A job beyond it
/// is refused at once ([`queue_full`]) instead of queueing: under a burst, callers get an
/// answer in microseconds, and memory and latency stay bounded.
pub const HASH_QUEUE: usize = 64;

/// The error of a password longer than [`hash::PASSWORD_BYTES`]: `INVALID_ARGUMENT` naming
/// the field `password`.
fn password_too_long() -> Error {
    Error::invalid(
        "password",
        format!("longer than {} bytes", hash::PASSWORD_BYTES),
    )
}

/// The error of a job refused because [`HASH_QUEUE`] jobs already wait. The error type has no
/// variant mapped to `RESOURCE_EXHAUSTED`; this is `UNAVAILABLE` (retry later).
fn queue_full() -> Error {
    Error::Overloaded("too many password hashings queued; retry in a second".into())
}

/// Hashes `password` as argon2id with `params` on a hashing thread.
///
/// # Errors
/// `InvalidArgument` (field `password`) beyond [`hash::PASSWORD_BYTES`], without hashing;
/// `Overloaded` (RESOURCE_EXHAUSTED) when the hashing queue is full; `Internal` when hashing fails.
pub async fn hash_password(password: String, params: Argon2Params) -> Result<String, Error> {
    if hash::too_long(&password) {
        return Err(password_too_long());
    }
    blocking(move || {
        hash::hash(&password, &params)
            .map_err(|e| Error::Internal(format!("hashing password: {e}")))
    })
    .await?
}

/// Verifies on a hashing thread (constant-time comparison inside; a failure costs one
/// argon2id computation whatever the stored format, see [`hash::verify`]).
///
/// # Errors
/// `InvalidArgument` (field `password`) beyond [`hash::PASSWORD_BYTES`], without hashing;
/// `Overloaded` when the hashing queue is full.
pub async fn verify_password(
    password: String,
    stored: String,
    allow_plain: bool,
) -> Result<bool, Error> {
    if hash::too_long(&password) {
        return Err(password_too_long());
    }
    blocking(move || hash::verify(&password, &stored, allow_plain)).await
}

/// Spends the time of a verification against nothing, so an unknown login answers as slowly as
/// a wrong password.
///
/// # Errors
/// As [`verify_password`].
pub async fn dummy_verify(password: String, params: Argon2Params) -> Result<(), Error> {
    if hash::too_long(&password) {
        return Err(password_too_long());
    }
    blocking(move || hash::dummy_verify(&password, &params)).await
}

/// A job for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the process's hashing pool ([`Pool`]: one thread per core, [`HASH_QUEUE`]
/// waiting jobs at most).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Pool::start(threads, HASH_QUEUE)
    })
    .run(f)
    .await
}

/// A small pool of dedicated hashing threads: more than one per core would only queue in the
/// kernel, the async threads stay free to answer other calls, and memory stays bounded (each
/// argon2id hash holds `memory_kib` while it runs, and a thread's allocator keeps what it used;
/// a few long-lived threads keep a few copies, not one per blocking thread).
///
/// At most `bound` jobs wait; beyond, [`Pool::run`] fails at once ([`queue_full`]). A job whose
/// caller has gone (its future dropped, e.g. a cancelled call) is skipped when a thread takes
/// it, not run.
struct Pool {
    tx: std::sync::Mutex<std::sync::mpsc::SyncSender<Job>>,
    /// Jobs skipped because their caller had gone.
    skipped: std::sync::Arc<AtomicUsize>,
}

impl Pool {
    /// Starts `threads` hashing threads sharing a queue of `bound` jobs.
    fn start(threads: usize, bound: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(bound);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("clientele-hash-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job drops its answer; the thread lives on.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        Self {
            tx: std::sync::Mutex::new(tx),
            skipped: std::sync::Arc::default(),
        }
    }

    /// Runs `f` on a hashing thread and waits for its answer.
    ///
    /// # Errors
    /// `Overloaded` at once when the queue is full; `Internal` when the pool is broken or
    /// `f` panicked.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = tokio::sync::oneshot::channel();
        let skipped = self.skipped.clone();
        let job: Job = Box::new(move || {
            if done.is_closed() {
                skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let _ = done.send(f());
        });
        self.tx
            .lock()
            .map_err(|_| Error::Internal("hashing pool poisoned".into()))?
            .try_send(job)
            .map_err(|e| match e {
                std::sync::mpsc::TrySendError::Full(_) => queue_full(),
                std::sync::mpsc::TrySendError::Disconnected(_) => {
                    Error::Internal("hashing pool stopped".into())
                }
            })?;
        result
            .await
            .map_err(|_| Error::Internal("hashing job dropped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hash_password("someäöü".into(), Argon2Params::default())
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("someäöü".into(), h.clone(), false)
            .await
            .unwrap());
        assert!(!verify_password("other".into(), h, false).await.unwrap());
    }
}

#[cfg(test)]
mod limits_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    fn is_password_violation(e: &Error) -> bool {
        matches!(e, Error::InvalidArgument(v) if v.len() == 1 && v[0].field == "password")
    }

    #[tokio::test]
    async fn a_password_beyond_the_limit_is_refused_without_hashing() {
        let huge = "x".repeat(4 * 1024 * 1024);
        let started = std::time::Instant::now();
        let e = hash_password(huge.clone(), Argon2Params::default())
            .await
            .unwrap_err();
        assert!(is_password_violation(&e), "{e}");
        let md5 = "$1$jdoe$pNtqiK13gpNlIqgSpbjl61".to_owned();
        let e = verify_password(huge.clone(), md5, false).await.unwrap_err();
        assert!(is_password_violation(&e), "{e}");
        let e = dummy_verify(huge, Argon2Params::default())
            .await
            .unwrap_err();
        assert!(is_password_violation(&e), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // At the limit, a password is still hashed.
        let at = "y".repeat(hash::PASSWORD_BYTES);
        let cheap = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = hash_password(at.clone(), cheap).await.unwrap();
        assert!(verify_password(at, h, false).await.unwrap());
    }

    /// Occupies every thread of `pool` until the returned sender is dropped or sent to.
    fn block(pool: &Arc<Pool>, threads: usize) -> Vec<std::sync::mpsc::Sender<()>> {
        (0..threads)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(move || rx.recv()).await });
                tx
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_beyond_the_queue_bound_is_refused_at_once() {
        let pool = Arc::new(Pool::start(1, 2));
        let release = block(&pool, 1);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Two wait in the queue...
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(|| 7).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // ...the third is refused.
        let e = pool.run(|| 7).await.unwrap_err();
        assert!(matches!(e, Error::Overloaded(_)), "{e}");
        drop(release);
        for w in waiting {
            assert_eq!(w.await.unwrap().unwrap(), 7);
        }
        assert_eq!(pool.run(|| 8).await.unwrap(), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_has_gone_is_skipped() {
        use futures::FutureExt;
        let pool = Arc::new(Pool::start(1, 16));
        let release = block(&pool, 1);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let ran = ran.clone();
            // Polled once (the job is queued), then dropped: the caller gave up.
            let abandoned = pool.run(move || ran.fetch_add(1, Ordering::SeqCst));
            assert!(abandoned.now_or_never().is_none());
        }
        drop(release);
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "abandoned jobs ran");
        assert_eq!(pool.skipped.load(Ordering::SeqCst), 10);
    }
}
