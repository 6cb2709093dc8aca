//! Passwords: verification of every hash format OTRS, Znuny and OTOBO wrote ([`hash`]), new
//! hashes as argon2id, the password policy ([`policy`]). Hashing runs on blocking threads, off
//! the async runtime.

pub mod hash;
pub mod policy;

use crate::error::Error;
use hash::Argon2Params;

/// Hashes `password` as argon2id with `params` on a blocking thread.
pub async fn hash_password(password: String, params: Argon2Params) -> Result<String, Error> {
    blocking(move || {
        hash::hash(&password, &params)
            .map_err(|e| Error::Internal(format!("hashing password: {e}")))
    })
    .await?
}

/// Verifies on a blocking thread (constant-time comparison inside).
pub async fn verify_password(
    password: String,
    stored: String,
    allow_plain: bool,
) -> Result<bool, Error> {
    blocking(move || hash::verify(&password, &stored, allow_plain)).await
}

/// Spends the time of a verification against nothing, so an unknown login answers as slowly as
/// a wrong password.
pub async fn dummy_verify(password: String, params: Argon2Params) -> Result<(), Error> {
    blocking(move || hash::dummy_verify(&password, &params)).await
}

/// A job for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// Runs a hash computation on a small pool of dedicated threads, one per core: more would only
/// queue in the kernel, the async threads stay free to answer other calls, and memory stays
/// bounded (each argon2id hash holds `memory_kib` while it runs, and a thread's allocator keeps
/// what it used; a few long-lived threads keep a few copies, not one per blocking thread).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let sender = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
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
        std::sync::Mutex::new(tx)
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    sender
        .lock()
        .map_err(|_| Error::Internal("hashing pool poisoned".into()))?
        .send(job)
        .map_err(|_| Error::Internal("hashing pool stopped".into()))?;
    result
        .await
        .map_err(|_| Error::Internal("hashing job dropped".into()))
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
