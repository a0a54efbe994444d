//! Passwords, as they arrive before hashing.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::{Email, TextRule, normalise_email, value_type};
use crate::DomainError;

value_type!(
    /// A password that meets the policy after NIST SP 800-63B: a minimum length, a generous
    /// maximum, nothing that forbids long passphrases; not one repeated character, not the
    /// account's email address, not one of the most common passwords. It exists only until it
    /// is hashed.
    Password,
    redacted
);

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 128;
    pub const RULE: TextRule = TextRule {
        min_length: Some(Self::MIN_CHARS),
        max_length: Self::MAX_CHARS,
        pattern: None,
        example: "correct horse battery",
        secret: true,
    };

    /// Accepts the password for the account with this email. Nothing is trimmed: every
    /// character of a password counts.
    pub fn parse(input: &str, email: &Email) -> Result<Self, DomainError> {
        let chars = input.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(DomainError::Invalid(format!(
                "password must have at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if chars > Self::MAX_CHARS {
            return Err(DomainError::Invalid(format!(
                "password must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if input.chars().all(|c| input.starts_with(c)) {
            return Err(DomainError::Invalid(
                "password must not repeat a single character".into(),
            ));
        }
        if is_common(input) {
            return Err(DomainError::Invalid(
                "password is one of the most common passwords; choose another".into(),
            ));
        }
        if normalise_email(input) == email.normalised() {
            return Err(DomainError::Invalid(
                "password must not be the email address".into(),
            ));
        }
        Ok(Password(input.to_owned()))
    }
}

/// The 10,000 most common passwords (`domain/data/common-passwords.txt`, where its source is
/// named), compared without regard to case: `Password123` is as guessable as `password123`.
pub fn is_common(input: &str) -> bool {
    static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        include_str!("../../data/common-passwords.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    });
    COMMON.contains(input.to_lowercase().as_str())
}
