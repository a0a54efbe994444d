//! Names people give: a user's display name and a tenant's name.

use super::{TextRule, value_type};
use crate::DomainError;

/// What both names accept: 1 to 100 characters once trimmed, not only white space, no control
/// characters.
const NAME_PATTERN: &str =
    r"^[^\u0000-\u001F\u007F]*[^\s\u0000-\u001F\u007F][^\u0000-\u001F\u007F]*$";

fn parse_name(field: &str, input: &str, max_chars: usize) -> Result<String, DomainError> {
    let value = input.trim();
    if value.is_empty() {
        return Err(DomainError::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max_chars {
        return Err(DomainError::Invalid(format!(
            "{field} must have at most {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

value_type!(
    /// The name a user is shown by, trimmed.
    DisplayName,
    redacted
);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;
    pub const RULE: TextRule = TextRule {
        min_length: Some(1),
        max_length: Self::MAX_CHARS,
        pattern: Some(NAME_PATTERN),
        example: "Ada",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        parse_name("display_name", input, Self::MAX_CHARS).map(DisplayName)
    }
}

value_type!(
    /// A tenant's name, trimmed.
    TenantName
);

impl TenantName {
    pub const MAX_CHARS: usize = 100;
    pub const RULE: TextRule = TextRule {
        min_length: Some(1),
        max_length: Self::MAX_CHARS,
        pattern: Some(NAME_PATTERN),
        example: "Acme",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        parse_name("name", input, Self::MAX_CHARS).map(TenantName)
    }
}

value_type!(
    /// A team's name, trimmed.
    TeamName
);

impl TeamName {
    pub const MAX_CHARS: usize = 100;
    pub const RULE: TextRule = TextRule {
        min_length: Some(1),
        max_length: Self::MAX_CHARS,
        pattern: Some(NAME_PATTERN),
        example: "Front desk",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        parse_name("name", input, Self::MAX_CHARS).map(TeamName)
    }
}

value_type!(
    /// What a team is for, trimmed; empty clears it. Line breaks are allowed, other control
    /// characters are not.
    TeamDescription
);

impl TeamDescription {
    pub const MAX_CHARS: usize = 500;
    pub const RULE: TextRule = TextRule {
        min_length: None,
        max_length: Self::MAX_CHARS,
        pattern: Some(r"^[^\u0000-\u0009\u000B-\u001F\u007F]*$"),
        example: "Everyone who staffs the reception",
        secret: false,
    };

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let value = input.trim();
        if value.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::Invalid(format!(
                "description must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\n') {
            return Err(DomainError::Invalid(
                "description must not contain control characters other than line breaks".into(),
            ));
        }
        Ok(TeamDescription(value.to_owned()))
    }
}
