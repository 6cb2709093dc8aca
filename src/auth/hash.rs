//! Password hashes of the `customer_user.pw` column: verification of every format that OTRS,
//! Znuny and OTOBO write (or accept) there, and argon2id PHC strings for new passwords.
//!
//! The stored string alone selects the algorithm ([`kind_of`]), in the order upstream's
//! `Kernel::System::CustomerAuth::DB` inspects it (spec section 4.4), never the configured
//! `CryptType`:
//!
//! - exactly 13 chars of `[./0-9A-Za-z]` → [`HashKind::DesCrypt`]: traditional DES
//!   `crypt(3)`, salt = the first 2 chars (OTRS `crypt`);
//! - `$1$<salt>$<22>` → [`HashKind::Md5Crypt`]: FreeBSD MD5-crypt (OTRS `md5`);
//! - `$apr1$<salt>$<22>` → [`HashKind::Apr1`]: Apache MD5-crypt (OTRS `apr1`);
//! - 64 hex digits → [`HashKind::Sha256Hex`]: unsalted SHA-256 (OTRS `sha2`, the default);
//! - 128 hex digits → [`HashKind::Sha512Hex`]: unsalted SHA-512 (OTRS `sha512`);
//! - `BCRYPT:<cost>:<16 chars>:<31>` → [`HashKind::OtrsBcrypt`]: bcrypt with the 16 characters
//!   as the raw salt (OTRS `bcrypt`);
//! - 40 hex digits → [`HashKind::Sha1Hex`]: unsalted SHA-1 (OTRS `sha1`);
//! - `$2a$` / `$2b$` / `$2y$` → [`HashKind::BcryptPhc`]: standard bcrypt (not written by
//!   upstream, which never verifies it; accepted for imported hashes);
//! - `$argon2id$` / `$argon2i$` / `$argon2d$` → [`HashKind::Argon2`]: this service's format;
//! - anything else non-empty → [`HashKind::Plain`] (compared as text only if allowed).
//!
//! Rules shared by all formats:
//! - the password is hashed as its UTF-8 bytes (as upstream does after `EncodeOutput`);
//! - an empty password never verifies, whatever is stored;
//! - digests are compared in constant time, as the exact (case-sensitive) string upstream
//!   would compare: a hex digest stored in UPPER case never verifies, because upstream's
//!   candidate is lower-case hex (spec 4.4);
//! - a stored value of a hash's shape is only ever verified as that hash, never as plain text
//!   (so the stored hash itself can't be used as a password);
//! - the values `*0` / `*1` (crypt(3)'s failure tokens, which upstream may have stored for
//!   logins unfit as DES salt, spec 4.5) and hash-looking strings of an unsupported scheme
//!   (`$5$`, `$6$`, `$2x$`, a 13-char DES string with an invalid salt, ...) never verify.
//!
//! Hostile input costs nothing and tells nothing:
//! - a password longer than [`PASSWORD_BYTES`] is refused before any hashing ([`too_long`]),
//!   so no format (MD5-crypt's cost grows with the password's length) can cost more than a
//!   password of that length;
//! - a verification that fails costs one argon2id computation whatever the stored format:
//!   against a legacy hash (DES, MD5, SHA, bcrypt, plain, unknown shapes) it runs
//!   [`dummy_verify`]'s computation as well, so a wrong password on a legacy user costs what an
//!   unknown login costs (callers run [`dummy_verify`] for those).
//!
//! Hashing here is CPU-bound (argon2id ~tens of ms, bcrypt up to seconds): callers on the async
//! runtime run [`verify`], [`hash`] and [`dummy_verify`] on a blocking thread.

use std::hint::black_box;

use std::cell::{Cell, RefCell};
use std::sync::Mutex;

pub use crate::domain::limits::PASSWORD_BYTES;

use argon2::{
    password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use base64::{
    alphabet,
    engine::{general_purpose::NO_PAD, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// What a stored hash string is, as recognised by its shape (never by configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// `$argon2id$…` (also `$argon2i$`, `$argon2d$`): PHC string, this service's format.
    Argon2,
    /// `$2a$`/`$2b$`/`$2y$`: standard bcrypt (upstream never verifies these; accepted for
    /// hashes imported from elsewhere).
    BcryptPhc,
    /// `BCRYPT:<cost>:<16-char salt>:<31-char hash>`: OTRS `bcrypt` `CryptType`.
    OtrsBcrypt,
    /// `$1$<salt>$<hash>`: FreeBSD MD5-crypt (OTRS `md5`).
    Md5Crypt,
    /// `$apr1$<salt>$<hash>`: Apache MD5-crypt (OTRS `apr1`).
    Apr1,
    /// 13 characters of `[./0-9A-Za-z]`: traditional DES crypt (OTRS `crypt`).
    DesCrypt,
    /// 128 hex digits: unsalted SHA-512 (OTRS `sha512`).
    Sha512Hex,
    /// 64 hex digits: unsalted SHA-256 (OTRS `sha2`, the default, and any unknown `CryptType`).
    Sha256Hex,
    /// 40 hex digits: unsalted SHA-1 (OTRS `sha1`).
    Sha1Hex,
    /// No hash shape at all: possibly a password stored with OTRS `CryptType` `plain`.
    Plain,
    /// Empty, a crypt(3) failure token, or hash-shaped but of a scheme never verified here.
    Unknown,
}

/// Argon2id parameters for new hashes (OWASP defaults m=19456 KiB, t=2, p=1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory cost in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Degree of parallelism (`p`).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

/// Why a new hash could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing itself failed.
    #[error("hashing password: {0}")]
    Hash(String),
    /// The password is longer than [`PASSWORD_BYTES`]; nothing was hashed.
    #[error("password longer than {PASSWORD_BYTES} bytes")]
    TooLong,
}

/// True when `password` is longer than [`PASSWORD_BYTES`]: [`verify`], [`hash`] and
/// [`dummy_verify`] refuse it without hashing.
#[must_use]
pub fn too_long(password: &str) -> bool {
    password.len() > PASSWORD_BYTES
}

/// bcrypt's base64 (`./A-Za-z0-9`, no padding), as written.
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(&alphabet::BCRYPT, NO_PAD);

/// The same, reading a 22-char salt whose unused low 4 bits need not be zero (as crypt(3)).
const BCRYPT_B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// crypt(3)'s 64 characters, in value order.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fixed salt and expected output of [`dummy_verify`]'s argon2id computation.
const DUMMY_SALT: &[u8; 16] = b"clientele-dummy!";
const DUMMY_HASH: [u8; 32] = [0x5a; 32];

fn is_crypt_char(b: u8) -> bool {
    b == b'.' || b == b'/' || b.is_ascii_alphanumeric()
}

fn is_hex_of_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Constant-time equality of two byte strings (lengths are not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// The `$<magic>$` of a string that starts with `$`: up to and including the second `$`.
fn crypt_magic(stored: &str) -> Option<&str> {
    let second = stored.get(1..)?.find('$')? + 1;
    stored.get(..=second)
}

/// Recognises the format of `stored` by its shape, following upstream's decision order
/// (spec 4.4): 13 characters first, then `$…$…$`, 64 hex, 128 hex, `BCRYPT:`, 40 hex.
#[must_use]
pub fn kind_of(stored: &str) -> HashKind {
    if stored.is_empty() || stored == "*0" || stored == "*1" {
        return HashKind::Unknown;
    }
    if stored.chars().count() == 13 {
        return kind_of_13(stored);
    }
    if stored.starts_with('$') && stored.bytes().filter(|&b| b == b'$').count() >= 3 {
        return match crypt_magic(stored) {
            Some("$1$") => HashKind::Md5Crypt,
            Some("$apr1$") => HashKind::Apr1,
            Some("$2a$" | "$2b$" | "$2y$") => HashKind::BcryptPhc,
            Some("$argon2id$" | "$argon2i$" | "$argon2d$") => HashKind::Argon2,
            _ => HashKind::Unknown,
        };
    }
    if is_hex_of_len(stored, 64) {
        HashKind::Sha256Hex
    } else if is_hex_of_len(stored, 128) {
        HashKind::Sha512Hex
    } else if stored.starts_with("BCRYPT:") {
        HashKind::OtrsBcrypt
    } else if is_hex_of_len(stored, 40) {
        HashKind::Sha1Hex
    } else {
        HashKind::Plain
    }
}

/// A 13-character value: upstream always takes it for DES crypt (spec 4.4 step 3).
fn kind_of_13(stored: &str) -> HashKind {
    let bytes = stored.as_bytes();
    if bytes.iter().all(|&b| is_crypt_char(b)) {
        return HashKind::DesCrypt;
    }
    // `$…` (upstream passes `$<digit>$…` whole to crypt(3), which never yields 13 chars) or a
    // DES string whose salt is outside the alphabet (old glibc accepted such salts; libxcrypt
    // answers `*0`): hash-shaped, never verifiable.
    let tail_is_des = bytes.len() == 13 && bytes.iter().skip(2).all(|&b| is_crypt_char(b));
    if stored.starts_with('$') || tail_is_des {
        HashKind::Unknown
    } else {
        HashKind::Plain
    }
}

/// Verifies `password` against `stored`. Constant-time comparison of digests. `allow_plain`:
/// whether a stored value that matches no hash shape may be compared as plain text (OTRS
/// "plain" `CryptType`) — off by default in the service.
///
/// Hash-shaped values are verified as their hash whatever `allow_plain` says (unlike
/// upstream's `plain` mode, which compares every stored value as text). An empty password, an
/// empty stored value and [`HashKind::Unknown`] never verify.
///
/// Cost: a password longer than [`PASSWORD_BYTES`] returns false at once (callers refuse it as
/// an invalid argument before). Any other failure, an empty password included, costs exactly one
/// argon2id computation: the stored argon2 hash's own, or, for every other stored format, the
/// one of [`dummy_verify`] with the parameters it was last given (the defaults before).
#[must_use]
pub fn verify(password: &str, stored: &str, allow_plain: bool) -> bool {
    if too_long(password) {
        return false;
    }
    // An empty password never verifies, but costs what a wrong one costs.
    let (ok, ran_argon2) = if password.is_empty() {
        (false, false)
    } else {
        verify_once(password.as_bytes(), stored, allow_plain)
    };
    if !ok && !ran_argon2 {
        let params = DUMMY_PARAMS.lock().map_or_else(|p| *p.into_inner(), |p| *p);
        dummy_verify_with(password, &params);
    }
    ok
}

/// The verification proper: whether `pw` matches `stored`, and whether an argon2
/// computation ran to find out.
fn verify_once(pw: &[u8], stored: &str, allow_plain: bool) -> (bool, bool) {
    if stored.is_empty() {
        return (false, false);
    }
    let ok = match kind_of(stored) {
        HashKind::Argon2 => {
            return verify_argon2(pw, stored).map_or((false, false), |ok| (ok, true));
        }
        HashKind::BcryptPhc => verify_bcrypt_phc(pw, stored),
        HashKind::OtrsBcrypt => verify_otrs_bcrypt(pw, stored),
        HashKind::Md5Crypt | HashKind::Apr1 => verify_md5_crypt(pw, stored),
        HashKind::DesCrypt => verify_des(pw, stored),
        HashKind::Sha512Hex => ct_eq(hex_lower(&Sha512::digest(pw)).as_bytes(), stored.as_bytes()),
        HashKind::Sha256Hex => ct_eq(hex_lower(&Sha256::digest(pw)).as_bytes(), stored.as_bytes()),
        HashKind::Sha1Hex => ct_eq(hex_lower(&Sha1::digest(pw)).as_bytes(), stored.as_bytes()),
        HashKind::Plain => allow_plain && ct_eq(pw, stored.as_bytes()),
        HashKind::Unknown => false,
    };
    (ok, false)
}

/// True when a successful login with this stored hash should re-hash it: anything that is not
/// argon2id with exactly `params`.
#[must_use]
pub fn needs_rehash(stored: &str, params: &Argon2Params) -> bool {
    if kind_of(stored) != HashKind::Argon2 {
        return true;
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed.version != Some(Version::V0x13.into())
    {
        return true;
    }
    let Ok(current) = Params::try_from(&parsed) else {
        return true;
    };
    current.m_cost() != params.memory_kib
        || current.t_cost() != params.iterations
        || current.p_cost() != params.parallelism
}

/// A new argon2id PHC string.
///
/// Any password up to [`PASSWORD_BYTES`] is hashed, even an empty one (which [`verify`] never
/// accepts). `params` also become those of the dummy computation of a failed [`verify`].
///
/// # Errors
/// [`HashError::TooLong`] beyond [`PASSWORD_BYTES`] (nothing hashed); [`HashError::Params`]
/// when `params` are out of argon2's ranges (e.g. `memory_kib` below 8 × `parallelism`, or
/// `parallelism` 0); [`HashError::Hash`] if hashing itself fails.
pub fn hash(password: &str, params: &Argon2Params) -> Result<String, HashError> {
    if too_long(password) {
        return Err(HashError::TooLong);
    }
    let argon = argon2id(params)?;
    set_dummy_params(params);
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| HashError::Hash(e.to_string()))?;
    let mut out = [0u8; 32];
    with_memory(&argon, password.as_bytes(), salt_raw, &mut out)
        .map_err(|e| HashError::Hash(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon
            .params()
            .try_into()
            .map_err(|e: argon2::password_hash::Error| HashError::Hash(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| HashError::Hash(e.to_string()))?),
    };
    Ok(phc.to_string())
}

/// Checks argon2id parameters without hashing.
///
/// # Errors
/// [`HashError::Params`] when they are out of argon2's ranges.
pub fn check_params(params: &Argon2Params) -> Result<(), HashError> {
    argon2id(params).map(|_| ())
}

thread_local! {
    /// Argon2's working memory, kept per thread and reused: hashing allocates nothing after the
    /// first call, and the process holds one block array per hashing thread, not one per call.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    /// How many argon2 computations this thread ran (hash, verification or dummy).
    static ARGON2_RUNS: Cell<u64> = const { Cell::new(0) };
}

/// The parameters of the dummy argon2id computation of a failed legacy [`verify`]: the last
/// ones given to [`dummy_verify`] or [`hash`] (the service's configured ones), the defaults
/// before.
static DUMMY_PARAMS: Mutex<Argon2Params> = Mutex::new(Argon2Params {
    memory_kib: Params::DEFAULT_M_COST,
    iterations: Params::DEFAULT_T_COST,
    parallelism: Params::DEFAULT_P_COST,
});

/// Makes `params` those of the dummy computation of a failed legacy [`verify`], if valid. The
/// service sets them with every [`dummy_verify`] and [`hash`]; call it at start-up to have them
/// from the first call on.
pub fn set_dummy_params(params: &Argon2Params) {
    if check_params(params).is_err() {
        return;
    }
    match DUMMY_PARAMS.lock() {
        Ok(mut p) => *p = *params,
        Err(poisoned) => *poisoned.into_inner() = *params,
    }
}

/// How many argon2 computations (hash, verification, dummy) the calling thread has run: lets
/// tests check the cost of a verification without timing it.
#[must_use]
pub fn argon2_runs_on_this_thread() -> u64 {
    ARGON2_RUNS.with(Cell::get)
}

/// `argon.hash_password_into` with this thread's reusable working memory.
fn with_memory(argon: &Argon2<'_>, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let needed = argon.params().block_count();
    ARGON2_RUNS.with(|n| n.set(n.get().saturating_add(1)));
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < needed {
            blocks.resize(needed, Block::new());
        }
        argon.hash_password_into_with_memory(pwd, salt, out, &mut blocks[..needed])
    })
}

/// Verifies against a fixed dummy argon2id hash with `params`, so an unknown login costs the
/// same time as a wrong password.
///
/// Like [`verify`], returns at once for an empty password or one longer than
/// [`PASSWORD_BYTES`]. Invalid `params` fall back to the defaults. Valid `params` also become
/// those of the dummy computation of a failed legacy [`verify`], so both cost the same.
pub fn dummy_verify(password: &str, params: &Argon2Params) {
    if too_long(password) {
        return;
    }
    set_dummy_params(params);
    dummy_verify_with(password, params);
}

/// One argon2id computation with `params` against the fixed dummy hash.
fn dummy_verify_with(password: &str, params: &Argon2Params) {
    let argon = argon2id(params).unwrap_or_default();
    let mut out = [0u8; 32];
    let hashed = with_memory(&argon, password.as_bytes(), DUMMY_SALT, &mut out);
    let equal = ct_eq(&out, &DUMMY_HASH);
    black_box((hashed.is_ok(), equal));
}

fn argon2id(params: &Argon2Params) -> Result<Argon2<'static>, HashError> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| HashError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// argon2 (any variant) with the parameters, salt and version written in the PHC string;
/// `None` when the string is malformed and nothing was computed.
fn verify_argon2(pw: &[u8], stored: &str) -> Option<bool> {
    let parsed = PasswordHash::new(stored).ok()?;
    let (Ok(algorithm), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed.hash,
        parsed.salt,
    ) else {
        return None;
    };
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(version), Ok(params)) = (version, Params::try_from(&parsed)) else {
        return None;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return None;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    Some(with_memory(&argon, pw, salt_raw, &mut out).is_ok() && ct_eq(&out, expected.as_bytes()))
}

/// The 23 bytes bcrypt keeps, of `pw` followed by NUL, cut to bcrypt's 72-byte key limit (as
/// `Crypt::Eksblowfish::Bcrypt::bcrypt_hash` with `key_nul` does, and `$2b$` crypt(3)).
/// `cost` must be at most 31.
fn bcrypt_raw(cost: u32, salt: [u8; 16], pw: &[u8]) -> [u8; 23] {
    let mut key = Vec::with_capacity(pw.len() + 1);
    key.extend_from_slice(pw);
    key.push(0);
    key.truncate(72);
    let full = bcrypt::bcrypt(cost, salt, &key);
    let mut out = [0u8; 23];
    out.copy_from_slice(&full[..23]);
    out
}

/// `BCRYPT:<cost>:<salt>:<hash>`: upstream parses `^BCRYPT:(\d+):(.{16}):(.*)$` and uses the
/// 16 salt characters as the raw 16 salt bytes (spec 4.4 d, 4.5).
fn verify_otrs_bcrypt(pw: &[u8], stored: &str) -> bool {
    let Some(rest) = stored.strip_prefix("BCRYPT:") else {
        return false;
    };
    let Some((cost, rest)) = rest.split_once(':') else {
        return false;
    };
    if cost.is_empty() || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(cost) = cost.parse::<u32>() else {
        return false;
    };
    let rest = rest.as_bytes();
    let (Some(salt), Some(b':'), Some(expected)) = (rest.get(..16), rest.get(16), rest.get(17..))
    else {
        return false;
    };
    let Ok(salt) = <[u8; 16]>::try_from(salt) else {
        return false;
    };
    if cost > 31 {
        return false;
    }
    let computed = BCRYPT_B64.encode(bcrypt_raw(cost, salt, pw));
    ct_eq(computed.as_bytes(), expected)
}

/// `$2a$`/`$2b$`/`$2y$<cost>$<22 salt><31 hash>` (60 characters). `$2a$` and `$2y$` are
/// computed as `$2b$` (the historic `$2a$` wrap-around bug only concerns keys over 255 bytes,
/// which are cut to 72 here).
fn verify_bcrypt_phc(pw: &[u8], stored: &str) -> bool {
    if stored.len() != 60 || !stored.is_ascii() {
        return false;
    }
    let (Some(cost), Some("$"), Some(salt), Some(expected)) = (
        stored.get(4..6),
        stored.get(6..7),
        stored.get(7..29),
        stored.get(29..),
    ) else {
        return false;
    };
    if !cost.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(cost) = cost.parse::<u32>() else {
        return false;
    };
    if !(4..=31).contains(&cost) {
        return false;
    }
    let Ok(salt) = BCRYPT_B64_LENIENT.decode(salt) else {
        return false;
    };
    let Ok(salt) = <[u8; 16]>::try_from(salt.as_slice()) else {
        return false;
    };
    let computed = BCRYPT_B64.encode(bcrypt_raw(cost, salt, pw));
    ct_eq(computed.as_bytes(), expected.as_bytes())
}

/// `$1$` / `$apr1$`: magic = up to the 2nd `$`, salt = up to the 3rd `$`, of which (as
/// `Crypt::PasswdMD5`) only the first 8 bytes are used — a longer salt therefore never
/// verifies, as upstream. Any byte may be in the salt (logins like `j.doe@ex`).
fn verify_md5_crypt(pw: &[u8], stored: &str) -> bool {
    let Some(magic) = crypt_magic(stored) else {
        return false;
    };
    let Some(after) = stored.as_bytes().get(magic.len()..) else {
        return false;
    };
    let Some(salt_end) = after.iter().position(|&b| b == b'$') else {
        return false;
    };
    let salt = &after[..salt_end.min(8)];
    let mut candidate = Vec::with_capacity(magic.len() + salt.len() + 23);
    candidate.extend_from_slice(magic.as_bytes());
    candidate.extend_from_slice(salt);
    candidate.push(b'$');
    candidate.extend_from_slice(&md5_crypt(pw, salt, magic.as_bytes()));
    ct_eq(&candidate, stored.as_bytes())
}

/// Poul-Henning Kamp's MD5-crypt (`$1$`; Apache's `$apr1$` differs only in the magic): the
/// 22-character checksum.
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &[u8]) -> [u8; 22] {
    let alternate = Md5::new()
        .chain_update(pw)
        .chain_update(salt)
        .chain_update(pw)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(pw)
        .chain_update(magic)
        .chain_update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alternate[..n]);
        left -= n;
    }
    let mut bits = pw.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        bits >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round % 2 == 1 {
            ctx.update(pw);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(pw);
        }
        if round % 2 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(pw);
        }
        digest = ctx.finalize();
    }
    let d = digest;
    let mut out = [0u8; 22];
    let groups = [
        (d[0], d[6], d[12]),
        (d[1], d[7], d[13]),
        (d[2], d[8], d[14]),
        (d[3], d[9], d[15]),
        (d[4], d[10], d[5]),
    ];
    for (i, (a, b, c)) in groups.into_iter().enumerate() {
        let v = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
        for j in 0..4 {
            out[i * 4 + j] = CRYPT_ALPHABET[((v >> (6 * j)) & 0x3f) as usize];
        }
    }
    let v = u32::from(d[11]);
    out[20] = CRYPT_ALPHABET[(v & 0x3f) as usize];
    out[21] = CRYPT_ALPHABET[((v >> 6) & 0x3f) as usize];
    out
}

/// Traditional DES crypt, salt = the first two characters of `stored`.
///
/// As crypt(3): only the first **8 bytes** of the password count, each byte's top bit is
/// dropped (so e.g. UTF-8 `ä` = C3 A4 counts as 43 24), and the key ends at a NUL byte.
/// Anything beyond is ignored — `very long password line` and `very lon` are the same key.
fn verify_des(pw: &[u8], stored: &str) -> bool {
    let key = pw.split(|&b| b == 0).next().unwrap_or_default();
    if key.is_empty() {
        return false;
    }
    // `stored` is 13 characters of the crypt alphabet (kind_of), which pwhash requires.
    pwhash::unix_crypt::verify(key, stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    /// Cheap argon2id parameters, to keep debug-build tests fast.
    const CHEAP: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// Spec 4.6 known-answer vectors: (password, stored, kind).
    const SPEC_VECTORS: &[(&str, &str, HashKind)] = &[
        (
            "Secret123!",
            "af6daf5f1a60c91f73361dd476c97e496beda065",
            HashKind::Sha1Hex,
        ),
        (
            "Secret123!",
            "94e0f9bc7f5a5225bd141bad5adf9befcc112aef09b88f47a14e20b75a7bbec2",
            HashKind::Sha256Hex,
        ),
        (
            "Secret123!",
            "e7c4f7a6da2f1c5c67dbc6fe9f229ebbfd9a6199aa65319d20e43df9b871fce2\
             294436f157f244dc74b7e250c6c0e5f6ecab5d53c67fbcc60d02dfd78f072047",
            HashKind::Sha512Hex,
        ),
        (
            "Secret123!",
            "$1$jdoe$pNtqiK13gpNlIqgSpbjl61",
            HashKind::Md5Crypt,
        ),
        (
            "Secret123!",
            "$apr1$jdoe$8xJ7kaojHzNELT7khMcKO0",
            HashKind::Apr1,
        ),
        ("Secret123!", "jdl1FMVQukacA", HashKind::DesCrypt),
        (
            "Secret123!",
            "BCRYPT:9:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            HashKind::OtrsBcrypt,
        ),
        (
            "some_pass",
            "fff99eddcef98a2265d68d4ec6ca9882c5fc8d0b",
            HashKind::Sha1Hex,
        ),
        (
            "some_pass",
            "17c1b8cba6fed372f40eed959c46e265ef8ec2e984b6dca935f8e38aa42c025f",
            HashKind::Sha256Hex,
        ),
        (
            "some_pass",
            "294780df8a0cb045a2f27f32aed8405ee77d11b94d53aa5b0da5e88ed32e8dee\
             1b3a020959a3146f648d6ba9803a966353bfed2e144eac0bf423e38eb1e6a4f7",
            HashKind::Sha512Hex,
        ),
        (
            "some_pass",
            "$1$unittest$2TkY3NkwHAMGhhPOa6qvL/",
            HashKind::Md5Crypt,
        ),
        (
            "some_pass",
            "$apr1$unittest$V/clUBfmlh8Zg76qmSU3s/",
            HashKind::Apr1,
        ),
        ("some_pass", "unxmE1xCYKfj6", HashKind::DesCrypt),
        (
            "some_pass",
            "BCRYPT:12:0123456789ABCDEF:ZczBTMIzX9j.lkoCXXD0aWhGCjbqWfe",
            HashKind::OtrsBcrypt,
        ),
        (
            "someäöü",
            "99b527f1c6746a4996d7f2e992f1ff444ebb61e4",
            HashKind::Sha1Hex,
        ),
        (
            "someäöü",
            "3573cec29cba4a6a15d6c7f1d80f855f2e16bcc34f74bafa30d6ddd323563f57",
            HashKind::Sha256Hex,
        ),
        (
            "someäöü",
            "de53b7533350fa89b49f2db4615ee0492727a25b8ea8af6fe1405986ec4b0b01\
             a0d75ede646474ec061a52b91efa00bac1f97550ccf5cda33405ef53b55a91d3",
            HashKind::Sha512Hex,
        ),
        (
            "someäöü",
            "$1$unittest$j2YfqH/bDcXxNIAOTsgLh.",
            HashKind::Md5Crypt,
        ),
        (
            "someäöü",
            "$apr1$unittest$vymXj9ISZUyZNGBSV1CxV.",
            HashKind::Apr1,
        ),
        ("someäöü", "unHtfgOrUchqM", HashKind::DesCrypt),
        (
            "someäöü",
            "BCRYPT:12:QwErTyUiOpAsDfGh:e6KsMJaGi8CXiBW86a4msdozTS.1rSG",
            HashKind::OtrsBcrypt,
        ),
        (
            "カス",
            "50ba013754166c0668d2290ce33868c5356635ed",
            HashKind::Sha1Hex,
        ),
        (
            "カス",
            "bce03240724788e2c7d1a8fdc9a9b6c05823040e23f86b6e94a3395705eed329",
            HashKind::Sha256Hex,
        ),
        (
            "カス",
            "$1$mhuber$29nqcMlTsbHEVixJSYD1..",
            HashKind::Md5Crypt,
        ),
        (
            "カス",
            "$apr1$mhuber$pEkMxlG1EmuMYdAh/bNs/1",
            HashKind::Apr1,
        ),
        ("カス", "mhgJ6YCCOKr5Y", HashKind::DesCrypt),
        (
            "very long password line",
            "jdaDimtbCTeEQ",
            HashKind::DesCrypt,
        ),
        ("very lon", "jdaDimtbCTeEQ", HashKind::DesCrypt),
        // The standard form of the first bcrypt row (spec 4.6).
        (
            "Secret123!",
            "$2b$09$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4YK",
            HashKind::BcryptPhc,
        ),
    ];

    /// Further vectors made with independent tools on this machine: Python `hashlib`,
    /// `openssl passwd -1/-apr1 -salt unittest`, Perl `crypt()` (libxcrypt) for DES and `$2b$`;
    /// the `BCRYPT:` rows are the `$2b$` rows rewritten per spec 4.5 (salt `Zx9Yw8Xv7Wu6Vt5U`).
    const EXTRA_VECTORS: &[(&str, &str)] = &[
        ("Переводчик", "ba8f1982efeca77a028c79c2aaeb28d7aa67aba8"),
        (
            "Переводчик",
            "bcd9cc74471be85f9a918c993cf449b14bd199450fbfe8e8c3cef983d6a66441",
        ),
        (
            "Переводчик",
            "83efaaf479013f01c074be7dcb9c3e266632fb4d82a5cd1d71c451ee3dc3788c\
             74f7ee61fe2936fbcad8f8a56574c7bf651c8823a57e3992cbb81f538b192ff8",
        ),
        ("Переводчик", "$1$unittest$p9c0E.JkF79wXcWa5zvXH/"),
        ("Переводчик", "$apr1$unittest$1BfNpTQ.HznX81Z5gmZkr."),
        ("Переводчик", "unPLw/STAJqS2"),
        (
            "Переводчик",
            "$2b$10$Ule3UVa2UFW1T1S0TlOzTOfqx2GeBOA03rJzYQo0tGAaJTgO/X4nS",
        ),
        (
            "Переводчик",
            "BCRYPT:10:Zx9Yw8Xv7Wu6Vt5U:fqx2GeBOA03rJzYQo0tGAaJTgO/X4nS",
        ),
        ("someカス", "98727c264a044518d7a83883d16d0f2ec3ff084d"),
        (
            "someカス",
            "ddd662b3117062f0ff435901fa0bdff75557158ea956b1ef53e9ed1d44cb3915",
        ),
        (
            "someカス",
            "342af6b01f559ae441fb9a043847c758c110ce1dc6a0594f3275909dfb9942dc\
             38a7ecb7d62ac1e801a9a47f9ce25987f86015ee83f7686b90069001b3611bb8",
        ),
        ("someカス", "$1$unittest$OQGqUdg/YRGMcNF4lNfAV."),
        ("someカス", "$apr1$unittest$jC8D2kiSE0WeN0t3i9pxY0"),
        ("someカス", "unJ9SrDLQffpU"),
        (
            "someカス",
            "$2b$10$Ule3UVa2UFW1T1S0TlOzTOawVTyWpJ0/Nori0XxEW2QjFp27UdeQW",
        ),
        (
            "someカス",
            "BCRYPT:10:Zx9Yw8Xv7Wu6Vt5U:awVTyWpJ0/Nori0XxEW2QjFp27UdeQW",
        ),
        // Salts outside the crypt alphabet, as logins give them (openssl passwd).
        ("Secret123!", "$1$j.doe@ex$3ODpio1xu93lYPi9ztdEP."),
        ("Secret123!", "$apr1$a-b c@x.$bhiANJgYq.ivZnG0vuv3e."),
        // `$2y$` and `$2a$` (Perl crypt with libxcrypt).
        (
            "Secret123!",
            "$2y$05$KBCwKxOzLha2MUDgW0PjXeVO5YLhFikbdUYGcloWMuJLJ5riFIHVu",
        ),
        (
            "Secret123!",
            "$2a$05$KBCwKxOzLha2MUDgW0PjXeVO5YLhFikbdUYGcloWMuJLJ5riFIHVu",
        ),
    ];

    /// A wrong password close to `pw`: its first character changed (DES ignores everything
    /// after the 8th byte, so a change at the end would not count there).
    fn wrong(pw: &str) -> String {
        "X".chars().chain(pw.chars().skip(1)).collect()
    }

    #[test]
    fn spec_vectors_verify_and_have_their_kind() {
        for &(pw, stored, kind) in SPEC_VECTORS {
            assert_eq!(kind_of(stored), kind, "{stored}");
            assert!(verify(pw, stored, false), "{pw} / {stored}");
            assert!(verify(pw, stored, true), "{pw} / {stored} (allow_plain)");
        }
    }

    #[test]
    fn spec_vectors_reject_wrong_passwords() {
        for &(pw, stored, kind) in SPEC_VECTORS {
            assert!(
                !verify(&wrong(pw), stored, false),
                "wrong for {pw} / {stored}"
            );
            if kind != HashKind::DesCrypt || pw.len() < 8 {
                assert!(!verify(&format!("{pw}x"), stored, true), "{pw}x / {stored}");
            }
        }
    }

    #[test]
    fn non_ascii_vectors_verify_and_reject_wrong_passwords() {
        for &(pw, stored) in EXTRA_VECTORS {
            assert!(verify(pw, stored, false), "{pw} / {stored}");
            assert!(!verify(&wrong(pw), stored, false), "wrong / {stored}");
        }
    }

    #[test]
    fn non_ascii_passwords_are_hashed_as_utf8_not_latin1() {
        // `someäöü` as Latin-1 bytes would be a different SHA-256; the UTF-8 one verifies.
        let stored = "3573cec29cba4a6a15d6c7f1d80f855f2e16bcc34f74bafa30d6ddd323563f57";
        assert!(verify("someäöü", stored, false));
        assert!(!verify("someaou", stored, false));
        // Normalisation is not applied: decomposed `ä` (a + U+0308) is another password.
        assert!(!verify("somea\u{308}öü", stored, false));
    }

    #[test]
    fn upper_case_hex_never_verifies() {
        for &(pw, stored, kind) in SPEC_VECTORS {
            if matches!(
                kind,
                HashKind::Sha1Hex | HashKind::Sha256Hex | HashKind::Sha512Hex
            ) {
                let upper = stored.to_ascii_uppercase();
                assert_eq!(kind_of(&upper), kind);
                assert!(!verify(pw, &upper, false));
                assert!(!verify(pw, &upper, true));
            }
        }
    }

    #[test]
    fn empty_password_never_verifies() {
        let sha256_of_empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(!verify("", sha256_of_empty, false));
        assert!(!verify("", "", true));
        assert!(!verify("x", "", true));
        let argon = hash("", &CHEAP).unwrap();
        assert!(!verify("", &argon, false));
        // A key that ends at once (NUL) is empty for DES.
        assert!(!verify("\0Secret123!", "jdl1FMVQukacA", false));
    }

    #[test]
    fn des_uses_only_the_first_8_bytes_up_to_a_nul() {
        assert!(verify("very long password line", "jdaDimtbCTeEQ", false));
        assert!(verify("very lon", "jdaDimtbCTeEQ", false));
        assert!(verify("very lonXXXXXX", "jdaDimtbCTeEQ", false));
        assert!(!verify("very lo", "jdaDimtbCTeEQ", false));
        // crypt(3) reads a C string: bytes after a NUL never count.
        assert!(verify("very lon\0g", "jdaDimtbCTeEQ", false));
        assert!(verify("very\0other", &pwhash_des("jd", "very"), false));
    }

    fn pwhash_des(salt: &str, pw: &str) -> String {
        #[allow(deprecated)]
        pwhash::unix_crypt::hash_with(salt, pw).unwrap()
    }

    #[test]
    fn md5_crypt_matches_pwhash_for_alphabet_salts() {
        let long = "long".repeat(20);
        for (salt, pw) in [
            ("abc", "pw"),
            ("12345678", "Secret123!"),
            ("x", long.as_str()),
        ] {
            let stored = format!("$1${salt}$");
            #[allow(deprecated)]
            let expected = pwhash::md5_crypt::hash_with(stored.as_str(), pw).unwrap();
            assert!(verify(pw, &expected, false), "{expected}");
        }
    }

    #[test]
    fn md5_salt_longer_than_8_bytes_never_verifies() {
        // Upstream cuts the salt to 8 bytes, so its candidate never equals such a string.
        assert!(!verify(
            "some_pass",
            "$1$unittest-abc$2TkY3NkwHAMGhhPOa6qvL/",
            false
        ));
        assert!(!verify(
            "some_pass",
            "$1$unittest$2TkY3NkwHAMGhhPOa6qvL/x",
            false
        ));
    }

    #[test]
    fn bcrypt_key_is_cut_at_72_bytes() {
        // Perl crypt() with `$2b$04$` + salt `abcdefghijklmnop`: 80 and 72 `x` agree, 71 not.
        let h72 = "$2b$04$WUHhXETkX0fnYkrqZU3ta.ij3gaF7fClh.a6SxcfgP9r3btUiFIym";
        let h71 = "$2b$04$WUHhXETkX0fnYkrqZU3ta.C6vHs2NObqrp.n7ksXdXEluBiZL9NNe";
        assert!(verify(&"x".repeat(80), h72, false));
        assert!(verify(&"x".repeat(72), h72, false));
        assert!(verify(&"x".repeat(71), h71, false));
        assert!(!verify(&"x".repeat(71), h72, false));
        // The BCRYPT: form of the same hashes behaves alike.
        let o72 = "BCRYPT:4:abcdefghijklmnop:ij3gaF7fClh.a6SxcfgP9r3btUiFIym";
        assert!(verify(&"x".repeat(100), o72, false));
        assert!(!verify(&"x".repeat(71), o72, false));
    }

    #[test]
    fn malformed_bcrypt_never_verifies() {
        let good = "BCRYPT:9:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK";
        for bad in [
            "BCRYPT:",
            "BCRYPT:9",
            "BCRYPT::abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "BCRYPT:x9:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "BCRYPT:32:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "BCRYPT:99999999999:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "BCRYPT:9:abcdefghijklmno:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "BCRYPT:9:abcdefghijklmnopq:0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "BCRYPT:9:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4Y",
            "BCRYPT:9:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YKx",
            "BCRYPT:9:abcdefghijklmnä:0etANxignnaMplvhtx8W5Zl07vTX4YK",
        ] {
            assert!(!verify("Secret123!", bad, true), "{bad}");
        }
        assert!(verify("Secret123!", good, false));
        for bad in [
            "$2b$09$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4Y",
            "$2b$9$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4YKK",
            "$2b$03$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "$2b$32$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "$2b$09$WUHhXETkX0fnYkrqZU3ta!0etANxignnaMplvhtx8W5Zl07vTX4YK",
            "$2b$09$WUHhXETkX0fnYkrqZU3täetANxignnaMplvhtx8W5Zl07vTX4YK",
            "$2x$09$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4YK",
        ] {
            assert!(!verify("Secret123!", bad, true), "{bad}");
        }
    }

    #[test]
    fn kind_of_each_shape() {
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let cases: &[(&str, HashKind)] = &[
            (argon, HashKind::Argon2),
            (
                "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA",
                HashKind::Argon2,
            ),
            (
                "$2y$05$KBCwKxOzLha2MUDgW0PjXeVO5YLhFikbdUYGcloWMuJLJ5riFIHVu",
                HashKind::BcryptPhc,
            ),
            (
                "$2a$05$KBCwKxOzLha2MUDgW0PjXeVO5YLhFikbdUYGcloWMuJLJ5riFIHVu",
                HashKind::BcryptPhc,
            ),
            (
                "BCRYPT:12:0123456789ABCDEF:ZczBTMIzX9j.lkoCXXD0aWhGCjbqWfe",
                HashKind::OtrsBcrypt,
            ),
            ("BCRYPT:garbage", HashKind::OtrsBcrypt),
            ("$1$jdoe$pNtqiK13gpNlIqgSpbjl61", HashKind::Md5Crypt),
            ("$apr1$jdoe$8xJ7kaojHzNELT7khMcKO0", HashKind::Apr1),
            ("jdl1FMVQukacA", HashKind::DesCrypt),
            ("Password12345", HashKind::DesCrypt), // 13 alphanumerics: upstream's DES rule
            (&"a".repeat(128), HashKind::Sha512Hex),
            (&"0".repeat(64), HashKind::Sha256Hex),
            (&"F".repeat(64), HashKind::Sha256Hex),
            (&"9".repeat(40), HashKind::Sha1Hex),
            (&"9".repeat(39), HashKind::Plain),
            (&"g".repeat(64), HashKind::Plain),
            ("Secret123!", HashKind::Plain),
            ("hello, world!", HashKind::Plain), // 13 chars, not DES-shaped
            ("$ecret", HashKind::Plain),
            ("$5$rounds=5000$salt$hash", HashKind::Unknown),
            ("$6$salt$hash", HashKind::Unknown),
            (
                "$2x$05$KBCwKxOzLha2MUDgW0PjXeVO5YLhFikbdUYGcloWMuJLJ5riFIHVu",
                HashKind::Unknown,
            ),
            ("$1$abcdefghij", HashKind::Unknown), // 13 chars starting with `$<digit>$`
            ("a-l1FMVQukacA", HashKind::Unknown), // DES with a salt outside the alphabet
            ("*0", HashKind::Unknown),
            ("*1", HashKind::Unknown),
            ("", HashKind::Unknown),
        ];
        for &(stored, kind) in cases {
            assert_eq!(kind_of(stored), kind, "{stored}");
        }
    }

    #[test]
    fn crypt_failure_tokens_and_unknown_schemes_never_verify() {
        for stored in ["*0", "*1", "$5$salt$hash", "a-l1FMVQukacA", "$1$abcdefghij"] {
            assert!(!verify(stored, stored, true), "{stored}");
            assert!(!verify("anything", stored, true), "{stored}");
        }
    }

    #[test]
    fn plain_text_only_when_allowed_and_never_for_hash_shapes() {
        assert!(!verify("Secret123!", "Secret123!", false));
        assert!(verify("Secret123!", "Secret123!", true));
        assert!(!verify("Secret123", "Secret123!", true));
        assert!(!verify("secret123!", "Secret123!", true));
        assert!(verify("Пароль€", "Пароль€", true));
        // A stored hash is never compared as text: the hash itself is no password.
        for &(_, stored, _) in SPEC_VECTORS {
            assert!(!verify(stored, stored, true), "{stored}");
        }
    }

    #[test]
    fn hash_output_verifies_and_is_current() {
        for pw in ["Secret123!", "someäöü", "Переводчик", "someカス"] {
            let stored = hash(pw, &CHEAP).unwrap();
            assert!(
                stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
                "{stored}"
            );
            assert_eq!(kind_of(&stored), HashKind::Argon2);
            assert!(verify(pw, &stored, false));
            assert!(!verify(&wrong(pw), &stored, false));
            assert!(!needs_rehash(&stored, &CHEAP));
        }
        // Fresh salt every time.
        assert_ne!(hash("x", &CHEAP).unwrap(), hash("x", &CHEAP).unwrap());
    }

    #[test]
    fn default_params_are_owasp_and_round_trip() {
        let params = Argon2Params::default();
        assert_eq!(
            params,
            Argon2Params {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
        let stored = hash("someäöü", &params).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("someäöü", &stored, false));
        assert!(!needs_rehash(&stored, &params));
        assert!(needs_rehash(&stored, &CHEAP));
        dummy_verify("someäöü", &params);
    }

    #[test]
    fn needs_rehash_for_legacy_and_other_argon2() {
        for &(_, stored, _) in SPEC_VECTORS {
            assert!(needs_rehash(stored, &Argon2Params::default()), "{stored}");
        }
        for stored in ["", "Secret123!", "*0", "$argon2id$garbage$x$y"] {
            assert!(needs_rehash(stored, &CHEAP), "{stored}");
        }
        let current = hash("pw", &CHEAP).unwrap();
        assert!(!needs_rehash(&current, &CHEAP));
        for other in [
            Argon2Params {
                memory_kib: 128,
                ..CHEAP
            },
            Argon2Params {
                iterations: 2,
                ..CHEAP
            },
            Argon2Params {
                parallelism: 2,
                memory_kib: 128,
                ..CHEAP
            },
        ] {
            assert!(needs_rehash(&current, &other), "{other:?}");
            let theirs = hash("pw", &other).unwrap();
            assert!(verify("pw", &theirs, false));
            assert!(needs_rehash(&theirs, &CHEAP));
        }
        // argon2i / argon2d and version 0x10 with the same numbers are re-hashed too.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, argon_params(&CHEAP))
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify("pw", &argon2i, false));
        assert!(needs_rehash(&argon2i, &CHEAP));
        let v10 = Argon2::new(Algorithm::Argon2id, Version::V0x10, argon_params(&CHEAP))
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify("pw", &v10, false));
        assert!(needs_rehash(&v10, &CHEAP));
    }

    fn argon_params(p: &Argon2Params) -> Params {
        Params::new(p.memory_kib, p.iterations, p.parallelism, None).unwrap()
    }

    #[test]
    fn invalid_params_are_an_error() {
        let bad = Argon2Params {
            memory_kib: 1,
            ..CHEAP
        };
        assert!(matches!(hash("pw", &bad), Err(HashError::Params(_))));
        let bad = Argon2Params {
            parallelism: 0,
            ..CHEAP
        };
        assert!(matches!(hash("pw", &bad), Err(HashError::Params(_))));
        // dummy_verify falls back to the defaults instead of failing.
        dummy_verify("pw", &bad);
    }

    #[test]
    fn dummy_verify_runs_for_any_password() {
        dummy_verify("someäöü", &CHEAP);
        dummy_verify("", &CHEAP);
    }

    /// The argon2 computations `f` runs on this thread.
    fn argon2_runs_of(f: impl FnOnce()) -> u64 {
        let before = argon2_runs_on_this_thread();
        f();
        argon2_runs_on_this_thread() - before
    }

    #[test]
    fn every_failed_verification_costs_one_argon2_computation() {
        set_dummy_params(&CHEAP);
        let argon = hash("Secret123!", &CHEAP).unwrap();
        let mut stored: Vec<&str> = SPEC_VECTORS.iter().map(|(_, s, _)| *s).collect();
        stored.extend([
            argon.as_str(),
            "$2b$04$abcdefghijklmnopqrstuu5rCKVbLWwGqkxB5t7fSVMSbQWRrQx1u",
            "plain-text-password",
            "*0",
            "$6$salt$unsupported",
            "$argon2id$malformed$x",
        ]);
        for s in stored {
            for allow_plain in [false, true] {
                let runs = argon2_runs_of(|| assert!(!verify("wrong-password", s, allow_plain)));
                assert_eq!(
                    runs, 1,
                    "a failure against {s:?} (allow_plain {allow_plain})"
                );
            }
        }
        // The unknown login's path costs the same; a success against a legacy hash none.
        assert_eq!(argon2_runs_of(|| dummy_verify("wrong-password", &CHEAP)), 1);
        for (pw, s, _) in SPEC_VECTORS {
            assert_eq!(argon2_runs_of(|| assert!(verify(pw, s, false))), 0, "{s}");
        }
        assert_eq!(
            argon2_runs_of(|| assert!(verify("Secret123!", &argon, false))),
            1
        );
    }

    #[test]
    fn passwords_beyond_the_limit_are_refused_without_hashing() {
        let huge = "p".repeat(PASSWORD_BYTES + 1);
        let md5 = "$1$jdoe$pNtqiK13gpNlIqgSpbjl61";
        let runs = argon2_runs_of(|| {
            assert!(!verify(&huge, md5, false));
            dummy_verify(&huge, &CHEAP);
            assert!(matches!(hash(&huge, &CHEAP), Err(HashError::TooLong)));
        });
        assert_eq!(runs, 0);
        let at = "p".repeat(PASSWORD_BYTES);
        assert!(verify(&at, &hash(&at, &CHEAP).unwrap(), false));
    }
}
