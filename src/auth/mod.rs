//! Passwords: new ones are stored as argon2id PHC strings (OWASP parameters), hashed off the
//! async runtime threads. Verification of every legacy OTRS format comes with the AuthService.

use argon2::{
    password_hash::{rand_core::OsRng, SaltString},
    Argon2, PasswordHasher,
};
use rand::{seq::SliceRandom, Rng};

use crate::error::Error;

/// Hashes `password` as argon2id with the crate's defaults (m=19 MiB, t=2, p=1: OWASP's
/// recommendation), on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
}

/// A random password of `len` (at least 8) characters from `[0-9A-Za-z]`, with at least two
/// lower-case and two upper-case letters and a digit, so it passes any OTRS-style policy.
pub fn generate_password(len: usize) -> String {
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"0123456789";
    let len = len.max(8);
    let mut rng = rand::thread_rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGIT].concat();
    let mut chars: Vec<u8> = [LOWER, LOWER, UPPER, UPPER, DIGIT]
        .iter()
        .map(|set| set[rng.gen_range(0..set.len())])
        .collect();
    while chars.len() < len {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    #[test]
    fn generated_passwords_have_every_class() {
        for _ in 0..100 {
            let p = generate_password(16);
            assert_eq!(p.len(), 16);
            assert!(p.chars().filter(char::is_ascii_lowercase).count() >= 2);
            assert!(p.chars().filter(char::is_ascii_uppercase).count() >= 2);
            assert!(p.chars().any(|c| c.is_ascii_digit()));
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hash_password("someäöü".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password("someäöü".as_bytes(), &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"other", &parsed)
            .is_err());
    }
}
