//! Page tokens (AIP-158) and page sizes.
//!
//! A token is opaque to callers: URL-safe base64 of a small versioned structure holding the
//! keyset position of the last record answered ([`SortKey`]) and a digest of the normalised
//! query it belongs to (criterion, filters, order, validity, sources: everything but the page
//! size), followed by a checksum of both. A token used with another query, or altered, is
//! refused (`INVALID_ARGUMENT` naming `page_token`). The checksum is not a signature: a caller
//! who forges a well-formed token can only start its own query at another position, which it
//! could have asked for anyway.
//!
//! **Stability.** Pages are keyset pages, not offsets: the next page holds the records strictly
//! after the position in the walk's order (order keys, then the folded key). A record that
//! existed throughout a walk and whose order key did not change appears exactly once; records
//! created or deleted during the walk, or whose order key changed, appear at most once.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use sha2::{Digest, Sha256};

use super::search::{SortKey, SortValue};
use crate::error::Error;

/// The page size when a request sets none.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page size; larger requests are cut to it (AIP-158 coerces rather than refuses).
pub const MAX_PAGE_SIZE: usize = 1000;

const VERSION: u8 = 1;
const DIGEST: usize = 16;

/// The page size a request asks for: 0 is [`DEFAULT_PAGE_SIZE`], more than
/// [`MAX_PAGE_SIZE`] is [`MAX_PAGE_SIZE`].
pub fn page_size(requested: u32) -> usize {
    match usize::try_from(requested).unwrap_or(MAX_PAGE_SIZE) {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// The digest a token is bound to: of any stable rendering of the normalised query.
pub fn query_digest(normalised: &str) -> [u8; DIGEST] {
    let mut out = [0; DIGEST];
    out.copy_from_slice(&Sha256::digest(normalised.as_bytes())[..DIGEST]);
    out
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The token of the page after `last`, for the query of `digest`.
pub fn encode(digest: &[u8; DIGEST], last: &SortKey) -> String {
    let mut body = vec![VERSION];
    body.extend_from_slice(digest);
    body.push(u8::try_from(last.values.len()).unwrap_or(u8::MAX));
    for v in &last.values {
        match v {
            SortValue::Missing => body.push(0),
            SortValue::Int(n) => {
                body.push(1);
                body.extend_from_slice(&n.to_be_bytes());
            }
            SortValue::Text(t) => {
                body.push(2);
                push_str(&mut body, t);
            }
        }
    }
    push_str(&mut body, &last.key);
    let sum = Sha256::digest(&body);
    body.extend_from_slice(&sum[..4]);
    URL_SAFE_NO_PAD.encode(body)
}

fn refused(why: &str) -> Error {
    Error::invalid("page_token", why)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(refused("is not a page token of this service"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn string(&mut self) -> Result<String, Error> {
        let mut len = [0; 4];
        len.copy_from_slice(self.take(4)?);
        let len = usize::try_from(u32::from_be_bytes(len))
            .map_err(|_| refused("is not a page token of this service"))?;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| refused("is not a page token of this service"))
    }
}

/// The position a token carries, if it is well-formed, unaltered and was issued for the query
/// of `digest`; else `INVALID_ARGUMENT` naming `page_token`.
pub fn decode(token: &str, digest: &[u8; DIGEST]) -> Result<SortKey, Error> {
    // Tokens are small: a long one was not issued here.
    if token.len() > 16 * 1024 {
        return Err(refused("is not a page token of this service"));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| refused("is not a page token of this service"))?;
    if raw.len() < 4 {
        return Err(refused("is not a page token of this service"));
    }
    let (body, sum) = raw.split_at(raw.len() - 4);
    if Sha256::digest(body)[..4] != *sum {
        return Err(refused("is not a page token of this service (altered)"));
    }
    let mut r = Reader(body);
    if r.byte()? != VERSION {
        return Err(refused("was issued by another version of this service"));
    }
    if r.take(DIGEST)? != digest {
        return Err(refused(
            "belongs to another query (criterion, filters, order_by, include_invalid and sources must stay the same)",
        ));
    }
    let n = r.byte()?;
    let mut values = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        values.push(match r.byte()? {
            0 => SortValue::Missing,
            1 => {
                let mut b = [0; 8];
                b.copy_from_slice(r.take(8)?);
                SortValue::Int(i64::from_be_bytes(b))
            }
            2 => SortValue::Text(r.string()?),
            _ => return Err(refused("is not a page token of this service")),
        });
    }
    let key = r.string()?;
    if !r.0.is_empty() {
        return Err(refused("is not a page token of this service"));
    }
    Ok(SortKey { values, key })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_round_trip_bound_to_their_query() {
        let pos = SortKey {
            values: vec![
                SortValue::Text("müller".into()),
                SortValue::Int(-5),
                SortValue::Missing,
            ],
            key: "jdoe".into(),
        };
        let d = query_digest("q1");
        let t = encode(&d, &pos);
        assert_eq!(decode(&t, &d).unwrap(), pos);
        assert!(decode(&t, &query_digest("q2")).is_err());
        let mut altered = t.clone().into_bytes();
        let i = altered.len() / 2;
        altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
        assert!(decode(std::str::from_utf8(&altered).unwrap(), &d).is_err());
        assert!(decode("", &d).is_err());
        assert!(decode("!!!", &d).is_err());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(u32::MAX), MAX_PAGE_SIZE);
    }
}
