//! Phone numbers.

use super::{TextRule, value_type};
use crate::DomainError;

value_type!(
    /// A phone number in E.164 form: `+` and 8 to 15 digits, trimmed.
    Phone,
    redacted
);

impl Phone {
    pub const RULE: TextRule = TextRule {
        min_length: None,
        max_length: 16,
        pattern: Some(r"^\+[0-9]{8,15}$"),
        example: "+4915112345678",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let phone = input.trim();
        let digits = phone.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            Ok(Phone(phone.to_owned()))
        } else {
            Err(DomainError::Invalid(
                "phone must be in E.164 form, such as +4915112345678".into(),
            ))
        }
    }
}
