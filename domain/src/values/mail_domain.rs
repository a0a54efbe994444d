//! The domains a tenant admits self-signups from.

use super::email::domain_name_ok;
use super::{TextRule, value_type};
use crate::DomainError;

value_type!(
    /// The part of an email address after its last `@`, trimmed and lower-cased, as a
    /// tenant's `email_domain` signup policy compares it.
    MailDomain
);

impl MailDomain {
    pub const MAX_BYTES: usize = 253;
    pub const RULE: TextRule = TextRule {
        min_length: None,
        max_length: Self::MAX_BYTES,
        pattern: Some(r"^[^@\s.]+(\.[^@\s.]+)+$"),
        example: "acme.example",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let domain = input.trim().to_lowercase();
        if domain.len() <= Self::MAX_BYTES && domain_name_ok(&domain) {
            Ok(MailDomain(domain))
        } else {
            Err(DomainError::Invalid(
                "allowed_domains must hold domains such as acme.example".into(),
            ))
        }
    }
}
