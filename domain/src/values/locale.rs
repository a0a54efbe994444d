//! Locales.

use super::{TextRule, value_type};
use crate::DomainError;

value_type!(
    /// A BCP 47 language tag of letters and digits separated by hyphens (`en`, `de-CH`): a
    /// first subtag of letters, every subtag 1 to 8 characters, 35 bytes at most. Taken as
    /// given, not trimmed.
    Locale
);

impl Locale {
    pub const MAX_BYTES: usize = 35;
    pub const RULE: TextRule = TextRule {
        min_length: None,
        max_length: Self::MAX_BYTES,
        pattern: Some("^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$"),
        example: "de-CH",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let well_formed = !input.is_empty()
            && input.len() <= Self::MAX_BYTES
            && input.split('-').enumerate().all(|(index, part)| {
                let alpha_first = index > 0 || part.chars().all(|c| c.is_ascii_alphabetic());
                alpha_first
                    && (1..=8).contains(&part.len())
                    && part.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if well_formed {
            Ok(Locale(input.to_owned()))
        } else {
            Err(DomainError::Invalid(
                "locale must be a language tag such as en or de-CH".into(),
            ))
        }
    }
}
