//! Plain Rust types and rules of the domain. Knows neither protobuf nor SQL nor LDAP.

pub mod customer;
pub mod customer_user;
pub mod email;
pub mod group;
pub mod matching;
pub mod paging;
pub mod query;
pub mod record;
pub mod search;

pub use customer::{Customer, CustomerAttr, CustomerField, CustomerPatch, CustomerSchema};
pub use customer_user::{CustomerUser, CustomerUserPatch, UserAttr, UserField, UserSchema};
pub use matching::{CaseRule, CustomerRules, MatchingRules, UserRules};
pub use record::{Attr, AttrRule, Field, Patch, Record, Schema};

use std::fmt;

/// Validity of a record, as OTRS's `valid` table ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Validity {
    #[default]
    Valid,
    Invalid,
    InvalidTemporarily,
}

impl Validity {
    /// The OTRS `valid.id`.
    pub fn id(self) -> i16 {
        match self {
            Self::Valid => 1,
            Self::Invalid => 2,
            Self::InvalidTemporarily => 3,
        }
    }

    /// From an OTRS `valid.id`; `None` for an id outside 1..=3.
    pub fn from_id(id: i64) -> Option<Self> {
        match id {
            1 => Some(Self::Valid),
            2 => Some(Self::Invalid),
            3 => Some(Self::InvalidTemporarily),
            _ => None,
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::InvalidTemporarily => "invalid-temporarily",
        })
    }
}

/// A point in time as stored by the sources (UTC seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// Lower-cases for case-insensitive comparison: Unicode-aware, one character at a time (so a
/// fragment folds the same on its own as inside a word, as the search grammar and SQL `LOWER()`
/// do).
pub fn fold(s: &str) -> String {
    fold_chars(s).collect()
}

/// The characters of [`fold`]`(s)`, without building the string (to compare or scan folded
/// text in place).
pub fn fold_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

/// `fold(a).cmp(&fold(b))`, without building either (ASCII texts, the common keys, compare
/// byte by byte: there folding is `to_ascii_lowercase` and characters order as bytes).
pub fn cmp_folded(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        let lower = |c: &u8| c.to_ascii_lowercase();
        a.as_bytes()
            .iter()
            .map(lower)
            .cmp(b.as_bytes().iter().map(lower))
    } else {
        fold_chars(a).cmp(fold_chars(b))
    }
}

/// Length limits of the OTRS columns (in characters), checked before anything is written so a
/// database never truncates or rejects a value half-way.
pub mod limits {
    pub const LOGIN: usize = 200;
    pub const EMAIL: usize = 150;
    pub const CUSTOMER_ID: usize = 150;
    pub const TITLE: usize = 50;
    pub const NAME: usize = 100;
    pub const SHORT: usize = 150;
    pub const LONG: usize = 200;
    pub const COMMENT: usize = 250;
    pub const MEMBERSHIP_LOGIN: usize = 100;
    pub const PREFERENCE_KEY: usize = 150;
    pub const PREFERENCE_VALUE: usize = 250;
    pub const COMPANY_NAME: usize = 200;
    /// Longest password accepted (in bytes, not a column: a bound on hashing cost), so no hash
    /// format can cost more than microseconds.
    pub const PASSWORD_BYTES: usize = 1024;
    /// Longest one-time password accepted (in bytes; a token has 6 digits), refused as
    /// `INVALID_ARGUMENT` naming `otp` before anything is looked up.
    pub const OTP_BYTES: usize = 64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmp_folded_orders_as_the_folds_do() {
        let words = [
            "",
            "a",
            "A",
            "ab",
            "aB",
            "Ab",
            "abc",
            "b",
            "Z",
            "z",
            "[",
            "_",
            "`",
            "0",
            "Ärger",
            "ärger",
            "Ärgerlich",
            "zebra",
            "Zürich",
            "zurich",
            "İstanbul",
            "istanbul",
            "ß",
            "ss",
            "Σίσυφος",
            "σίσυφος",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    cmp_folded(a, b),
                    fold(a).cmp(&fold(b)),
                    "{a:?} against {b:?}"
                );
            }
        }
    }
}
