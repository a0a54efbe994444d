//! Email addresses.

use super::{TextRule, value_type};
use crate::DomainError;

value_type!(
    /// An email address of the form `local@domain.tld`, trimmed, with its case as given.
    /// Deliberately conservative: deliverability is proven by email, not by a rule.
    Email,
    redacted
);

/// Normalises an email address for uniqueness: trimmed and lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A domain of at least two labels (letters, digits, hyphens; none empty, none over 63
/// bytes, none starting or ending with a hyphen).
pub(super) fn domain_name_ok(domain: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= Email::MAX_LABEL_BYTES
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    domain.split('.').count() >= 2
        && domain.split('.').all(label_ok)
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

impl Email {
    pub const MAX_BYTES: usize = 254;
    pub const MAX_LOCAL_BYTES: usize = 64;
    pub const MAX_LABEL_BYTES: usize = 63;
    pub const RULE: TextRule = TextRule {
        min_length: None,
        max_length: Self::MAX_BYTES,
        pattern: Some(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"),
        example: "ada@acme.example",
        secret: false,
    };

    /// Trims the input and accepts it if it has a non-empty local part of at most 64 bytes,
    /// one `@` before a domain of at least two labels (letters, digits, hyphens; none empty,
    /// none over 63 bytes, none starting or ending with a hyphen), at most 254 bytes in all,
    /// and no white space or control characters.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let email = input.trim();
        let invalid = || {
            DomainError::Invalid("email must be a valid address such as name@example.com".into())
        };
        if email.is_empty() || email.len() > Self::MAX_BYTES {
            return Err(invalid());
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty() || local.len() > Self::MAX_LOCAL_BYTES || local.contains('@') {
            return Err(invalid());
        }
        if !domain_name_ok(domain) {
            return Err(invalid());
        }
        Ok(Email(email.to_owned()))
    }

    /// The address as uniqueness compares it: lower-cased.
    pub fn normalised(&self) -> String {
        normalise_email(&self.0)
    }

    /// The part after the `@`, lower-cased.
    pub fn domain(&self) -> String {
        self.0
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_lowercase())
            .unwrap_or_default()
    }
}
