//! Small value types with their validation rules.

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    #[default]
    Standard,
    Premium,
}

impl Plan {
    pub fn as_str(&self) -> &'static str {
        match self {
            Plan::Standard => "standard",
            Plan::Premium => "premium",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Deactivated,
}

impl UserStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Deactivated => "deactivated",
        }
    }
}

pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MAX_TENANT_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_BYTES: usize = 254;
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_LOCALE_BYTES: usize = 35;

/// Normalises an email address for uniqueness: trimmed and lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Accepts an address of the form `local@domain.tld` with no spaces or control characters.
/// Deliberately conservative: deliverability is proven by email, not by a regex.
pub fn validate_email(email: &str) -> Result<(), DomainError> {
    let invalid =
        || DomainError::Invalid("email must be a valid address such as name@example.com".into());
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES {
        return Err(invalid());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err(invalid());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
        || !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return Err(invalid());
    }
    Ok(())
}

/// A password policy after NIST SP 800-63B: a minimum length, a generous maximum, and
/// nothing that forbids long passphrases.
pub fn validate_password(password: &str, email: &str) -> Result<(), DomainError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(DomainError::Invalid(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(DomainError::Invalid(format!(
            "password must have at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Err(DomainError::Invalid(
            "password must not repeat a single character".into(),
        ));
    }
    if normalise_email(password) == normalise_email(email) {
        return Err(DomainError::Invalid(
            "password must not be the email address".into(),
        ));
    }
    Ok(())
}

fn validate_text(field: &str, value: &str, max_chars: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() {
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
    Ok(())
}

pub fn validate_display_name(value: &str) -> Result<(), DomainError> {
    validate_text("display_name", value, MAX_DISPLAY_NAME_CHARS)
}

pub fn validate_tenant_name(value: &str) -> Result<(), DomainError> {
    validate_text("name", value, MAX_TENANT_NAME_CHARS)
}

/// Phone numbers in E.164 form: `+` followed by 8 to 15 digits.
pub fn validate_phone(value: &str) -> Result<(), DomainError> {
    let digits = value.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DomainError::Invalid(
            "phone must be in E.164 form, such as +4915112345678".into(),
        ))
    }
}

/// Locales as BCP 47 language tags of letters and digits separated by hyphens (`en`, `de-CH`).
pub fn validate_locale(value: &str) -> Result<(), DomainError> {
    let well_formed = !value.is_empty()
        && value.len() <= MAX_LOCALE_BYTES
        && value.split('-').enumerate().all(|(index, part)| {
            let alpha_first = index > 0 || part.chars().all(|c| c.is_ascii_alphabetic());
            alpha_first
                && (1..=8).contains(&part.len())
                && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if well_formed {
        Ok(())
    } else {
        Err(DomainError::Invalid(
            "locale must be a language tag such as en or de-CH".into(),
        ))
    }
}
