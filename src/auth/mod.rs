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

/// Runs a hash computation on the blocking pool, at most one per core at a time: more would
/// only queue in the kernel, and the async threads stay free to answer other calls.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        )
    });
    let _permit = slots
        .acquire()
        .await
        .map_err(|e| Error::Internal(format!("password slots: {e}")))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("password task: {e}")))
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
