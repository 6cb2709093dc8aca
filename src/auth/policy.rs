//! The password policy (OTRS CustomerPreferencesGroups###Password) and generated passwords that
//! satisfy it.

use rand::{seq::SliceRandom, Rng};
use regex::Regex;

use crate::error::FieldViolation;

/// What a new password must satisfy.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub require_mixed_case: bool,
    pub require_digit: bool,
    pub pattern: Option<Regex>,
}

impl PasswordPolicy {
    /// `pattern` "" means none; an invalid expression is an error naming the problem.
    pub fn new(
        min_length: usize,
        require_mixed_case: bool,
        require_digit: bool,
        pattern: &str,
    ) -> Result<Self, String> {
        let pattern = if pattern.is_empty() {
            None
        } else {
            Some(Regex::new(pattern).map_err(|e| e.to_string())?)
        };
        Ok(Self {
            min_length,
            require_mixed_case,
            require_digit,
            pattern,
        })
    }

    /// Every rule `password` breaks, as violations of `field`.
    pub fn check(&self, password: &str, field: &str) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        if password.is_empty() {
            out.push(FieldViolation::new(field, "must not be empty"));
            return out;
        }
        if password.chars().count() < self.min_length {
            out.push(FieldViolation::new(
                field,
                format!("must be at least {} characters", self.min_length),
            ));
        }
        if self.require_mixed_case
            && (password.chars().filter(char::is_ascii_lowercase).count() < 2
                || password.chars().filter(char::is_ascii_uppercase).count() < 2)
        {
            out.push(FieldViolation::new(
                field,
                "must contain at least 2 lower-case and 2 upper-case letters",
            ));
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            out.push(FieldViolation::new(field, "must contain a digit"));
        }
        if let Some(re) = &self.pattern {
            if !re.is_match(password) {
                out.push(FieldViolation::new(
                    field,
                    format!("must match the pattern {}", re.as_str()),
                ));
            }
        }
        out
    }

    /// A random password of `[0-9A-Za-z]` that passes this policy: at least 16 characters (or
    /// the minimum), two lower- and two upper-case letters and a digit; retried until the
    /// pattern matches. `None` when no such password turns up (a pattern that needs other
    /// characters).
    pub fn generate(&self) -> Option<String> {
        (0..1000)
            .map(|_| generate_password(self.min_length.max(16)))
            .find(|p| self.check(p, "password").is_empty())
    }
}

/// A random password of `len` (at least 8) characters from `[0-9A-Za-z]`, with at least two
/// lower-case and two upper-case letters and a digit.
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

    #[test]
    fn every_violation_is_listed() {
        let p = PasswordPolicy::new(10, true, true, "^[^ ]+$").unwrap();
        let v = p.check("ab cd", "password");
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(p.check("abCDefGH12", "password").is_empty());
        assert_eq!(p.check("", "password").len(), 1);
    }

    #[test]
    fn generated_passwords_pass_the_policy() {
        let p = PasswordPolicy::new(20, true, true, "^[A-Z]").unwrap();
        for _ in 0..50 {
            let g = p.generate().unwrap();
            assert!(p.check(&g, "password").is_empty(), "{g}");
            assert!(g.len() >= 20);
        }
        let impossible = PasswordPolicy::new(8, false, false, "^!").unwrap();
        assert!(impossible.generate().is_none());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(PasswordPolicy::new(8, false, false, "(").is_err());
    }
}
