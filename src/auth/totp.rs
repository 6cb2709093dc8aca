//! Time-based one-time passwords (RFC 6238) exactly as Znuny's and OTOBO's customer two-factor
//! module (`Customer::AuthTwoFactorModule`, GoogleAuthenticator) computes them: HMAC-SHA1 over
//! the 30-second time step, dynamically truncated (RFC 4226), 6 digits, zero-padded, from a
//! base32 secret. Also: new secrets ([`generate_secret`], 16 base32 characters, the form
//! Znuny's preferences screen validates with `^([A-Z2-7]{16}|)$`), the `otpauth://` URI
//! authenticator apps read ([`otpauth_uri`]) and that URI as an SVG QR code ([`qr_svg`]).
//!
//! Tokens are compared in constant time, every candidate window always computed. Which time
//! steps a login accepts once (replay protection) is the directory's business, stored in the
//! database; this module only says which step a token belongs to ([`matching_step`]).

use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::error::Error;

/// Seconds per time step (RFC 6238 X, Znuny's fixed value).
pub const STEP_SECONDS: i64 = 30;
/// Digits of a token.
pub const DIGITS: u32 = 6;
/// Random bytes of a new secret: 80 bits, 16 base32 characters (Znuny's validated form).
pub const SECRET_BYTES: usize = 10;

/// Base32 (RFC 4648, no padding) read leniently: lower case is accepted and trailing bits that
/// make no whole byte are ignored, as Znuny's own decoder does. `None` only if the
/// specification were invalid (it is not; kept fallible to stay panic-free).
static BASE32: LazyLock<Option<Encoding>> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.check_trailing_bits = false;
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.encoding().ok()
});

/// A fresh random secret, base32 (16 characters `A-Z2-7`), as Znuny stores it.
pub fn generate_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    data_encoding::BASE32_NOPAD.encode(&key)
}

/// The key bytes of a stored base32 secret (spaces, `-` and `=` padding ignored, any case),
/// `None` when it is empty or not base32. Characters beyond the last whole byte are dropped,
/// as Znuny's decoder drops their bits.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let mut clean: Vec<u8> = secret
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'-' | b'='))
        .collect();
    // Lengths 1, 3 and 6 (mod 8) carry bits of no whole byte: drop that last character.
    if matches!(clean.len() % 8, 1 | 3 | 6) {
        clean.pop();
    }
    if clean.is_empty() {
        return None;
    }
    BASE32.as_ref()?.decode(&clean).ok()
}

/// The time step of `epoch_seconds` (`floor(t / 30)`).
pub fn step_at(epoch_seconds: i64) -> i64 {
    epoch_seconds.div_euclid(STEP_SECONDS)
}

/// The HOTP value (RFC 4226) of `key` at `counter` with `digits` digits (1..=9; the RFC 6238
/// test vectors use 8), `None` only if HMAC refused the key (it accepts any length).
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> Option<u32> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.last()? & 0x0f);
    let bytes: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    let binary = u32::from_be_bytes(bytes) & 0x7fff_ffff;
    Some(binary % 10u32.checked_pow(digits)?)
}

/// The token of `key` at time step `step`: [`DIGITS`] digits, zero-padded.
pub fn token_at(key: &[u8], step: i64) -> Option<String> {
    let counter = u64::try_from(step).ok()?;
    Some(format!("{:06}", hotp(key, counter, DIGITS)?))
}

/// The time step `token` belongs to: the current step `now_step`, or, with `allow_previous`
/// (Znuny's AllowPreviousToken), the one before; `None` when it matches neither (or is not
/// six digits; surrounding white space is ignored). Every candidate is computed and compared
/// in constant time, so the answer's timing tells nothing about which digits were right.
pub fn matching_step(key: &[u8], token: &str, now_step: i64, allow_previous: bool) -> Option<i64> {
    let token = token.trim().as_bytes();
    let well_formed = token.len() == DIGITS as usize && token.iter().all(u8::is_ascii_digit);
    let mut found = None;
    let previous = allow_previous.then(|| now_step.checked_sub(1)).flatten();
    for step in [Some(now_step), previous].into_iter().flatten() {
        let Some(expected) = token_at(key, step) else {
            continue;
        };
        let equal: bool = expected.as_bytes().ct_eq(token).into();
        if equal && well_formed && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// What is escaped in the label and the query of an otpauth URI: everything but `A-Za-z0-9`
/// and `-._~` (RFC 3986 unreserved), so `:`, `@`, spaces and non-ASCII are percent-encoded.
const URI_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `otpauth://totp/` URI of a secret (Google Authenticator's key URI format): label
/// `issuer:login`, and the parameters `secret`, `issuer`, `algorithm=SHA1`, `digits=6`,
/// `period=30`, every part percent-encoded.
pub fn otpauth_uri(issuer: &str, login: &str, secret: &str) -> String {
    let issuer = utf8_percent_encode(issuer, URI_ESCAPE).to_string();
    let login = utf8_percent_encode(login, URI_ESCAPE);
    let secret = utf8_percent_encode(secret, URI_ESCAPE);
    format!(
        "otpauth://totp/{issuer}:{login}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )
}

/// `uri` (an otpauth URI from [`otpauth_uri`]) as a QR code in a standalone SVG document,
/// rendered on the server (black modules on white, with the quiet zone, at least 200 px).
/// `Internal` when the text does not fit a QR code (thousands of bytes: an otpauth URI of a
/// bounded login and issuer always fits).
///
/// Its consumers are the admin console's and the CLI's enrolment views (issue 16, point 5),
/// which call it with the `otpauth_uri` of [`crate::directory::TotpEnrollment`].
pub fn qr_svg(uri: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| Error::Internal(format!("otpauth URI as QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, the SHA1 rows: (time, 8-digit TOTP), seed "12345678901234567890".
    const RFC6238_SHA1: [(i64, u32); 6] = [
        (59, 94_287_082),
        (1_111_111_109, 7_081_804),
        (1_111_111_111, 14_050_471),
        (1_234_567_890, 89_005_924),
        (2_000_000_000, 69_279_037),
        (20_000_000_000, 65_353_130),
    ];

    #[test]
    fn rfc6238_sha1_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in RFC6238_SHA1 {
            let step = u64::try_from(step_at(t)).unwrap();
            assert_eq!(hotp(key, step, 8), Some(want), "T = {t}");
            // Six digits are the last six of the eight (the same truncated value mod 10^6).
            assert_eq!(
                token_at(key, step_at(t)).unwrap(),
                format!("{:06}", want % 1_000_000),
                "T = {t}"
            );
        }
    }

    #[test]
    fn secrets_are_znuny_base32_and_round_trip() {
        let s = generate_secret();
        assert_eq!(s.len(), 16);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(decode_secret(&s).unwrap().len(), SECRET_BYTES);
        assert_ne!(generate_secret(), s);
        // The RFC seed in base32, any case, grouped, padded.
        let rfc = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(decode_secret(rfc).unwrap(), b"12345678901234567890");
        assert_eq!(
            decode_secret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            b"12345678901234567890"
        );
        assert_eq!(decode_secret("GEZDGNA=").unwrap(), b"1234");
        // A character of no whole byte is dropped, as Znuny drops its bits.
        assert_eq!(decode_secret("GEZDGNBVG").unwrap(), b"12345");
        assert_eq!(decode_secret("GEZ").unwrap(), b"1");
        assert_eq!(decode_secret(""), None);
        assert_eq!(decode_secret("A"), None);
        assert_eq!(decode_secret("not base32!"), None);
        assert_eq!(decode_secret("GEZDGNB1"), None);
    }

    #[test]
    fn the_previous_window_only_when_allowed() {
        let key = b"12345678901234567890";
        let now = step_at(2_000_000_000);
        let current = token_at(key, now).unwrap();
        let previous = token_at(key, now - 1).unwrap();
        let older = token_at(key, now - 2).unwrap();
        assert_eq!(matching_step(key, &current, now, false), Some(now));
        assert_eq!(
            matching_step(key, &format!(" {current}\n"), now, false),
            Some(now)
        );
        assert_eq!(matching_step(key, &previous, now, true), Some(now - 1));
        assert_eq!(matching_step(key, &previous, now, false), None);
        assert_eq!(matching_step(key, &older, now, true), None);
        assert_eq!(matching_step(key, "", now, true), None);
        assert_eq!(matching_step(key, &format!("{current}0"), now, true), None);
        assert_eq!(matching_step(key, "12345a", now, true), None);
    }

    #[test]
    fn the_uri_carries_issuer_and_login_and_renders_as_svg() {
        let uri = otpauth_uri("Acme Help Desk", "j.doe@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Help%20Desk:j.doe%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Acme%20Help%20Desk&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        assert!(svg.contains("#000000") && svg.contains("#ffffff"));
        // Another text, another picture; too much text for any QR code is an error.
        assert_ne!(qr_svg("otpauth://totp/x:y?secret=A").unwrap(), svg);
        assert!(qr_svg(&"x".repeat(8_000)).is_err());
    }
}
