use thiserror::Error;

/// Why a command was refused. Each variant is a rule a user can understand.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("the tenant does not exist")]
    TenantNotFound,
    #[error("the tenant already exists")]
    TenantAlreadyExists,
    #[error("the user does not exist")]
    UserNotFound,
    #[error("the user already exists")]
    UserAlreadyExists,
    #[error("the session does not exist")]
    SessionNotFound,
    #[error("only an administrator of the tenant may do this")]
    NotAllowed,
    #[error("the last active administrator of a tenant cannot be demoted, deactivated or erased")]
    LastActiveAdmin,
    #[error("the session has ended")]
    SessionEnded,
    /// The tenant's signup policy does not admit this self-signup.
    #[error("{0}")]
    SignupRefused(String),
}
