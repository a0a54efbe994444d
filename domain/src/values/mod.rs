//! Small value types with their validation rules.
//!
//! A value that comes from outside (an email, a password, a name, a phone number, a locale)
//! is parsed once, at the edge, into its type: `Email::parse(input)` either refuses it with
//! the reason a user can read or returns an `Email` that is valid for as long as it lives.
//! Decisions take these types, so no decision validates text and no rule exists twice. Each
//! type also states its rule as a [`TextRule`], from which the OpenAPI documents describe
//! the field.

mod email;
mod locale;
mod mail_domain;
mod names;
mod password;
mod phone;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use email::{Email, normalise_email};
pub use locale::Locale;
pub use mail_domain::MailDomain;
pub use names::{DisplayName, TeamDescription, TeamName, TenantName};
pub use password::{Password, is_common as is_common_password};
pub use phone::Phone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Who may sign up to a tenant by themselves (invitations are admitted whatever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Anyone who knows the tenant's id.
    #[default]
    Open,
    /// Nobody: members join by invitation only.
    InvitationOnly,
    /// Addresses whose domain is one of the tenant's `allowed_domains`.
    EmailDomain,
}

impl SignupPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            SignupPolicy::Open => "open",
            SignupPolicy::InvitationOnly => "invitation_only",
            SignupPolicy::EmailDomain => "email_domain",
        }
    }
}

/// A text value's rule, as far as a schema can say it: lengths, a pattern (ECMA-262, as
/// OpenAPI wants it) and an example. The parser is the rule; the pattern is its description
/// for clients, as close as a regular expression gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    pub min_length: Option<usize>,
    pub max_length: usize,
    pub pattern: Option<&'static str>,
    pub example: &'static str,
    /// A secret (a password): documents mark it so and clients mask it.
    pub secret: bool,
}

/// Declares a value type: a string that only its `parse` makes, with its accessors. Types
/// holding personal data or secrets print as `Type(..)` in `Debug`, so that a logged command
/// does not carry them.
macro_rules! value_type {
    ($(#[$meta:meta])* $name:ident, redacted) => {
        value_type!(@type $(#[$meta])* $name);
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
    ($(#[$meta:meta])* $name:ident) => {
        value_type!(@type $(#[$meta])* $name);
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    };
    (@type $(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use value_type;
