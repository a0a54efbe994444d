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
    #[error("the password is not correct")]
    WrongPassword,
    #[error("the account's deletion is already scheduled")]
    DeletionAlreadyScheduled,
    #[error("the account is not scheduled for deletion")]
    DeletionNotScheduled,
    #[error("the team does not exist")]
    TeamNotFound,
    #[error("the team already exists")]
    TeamAlreadyExists,
    #[error("the webhook does not exist")]
    WebhookNotFound,
    #[error("the webhook already exists")]
    WebhookAlreadyExists,
    #[error("the user is not a member of this team")]
    NotInTeam,
    #[error("the invitation does not exist")]
    InvitationNotFound,
    #[error("the address is already an active member of this tenant")]
    AlreadyMember,
    #[error("a pending invitation for this address exists; resend or revoke it")]
    InvitationPending,
    /// The invitation can no longer change as asked (accepted, revoked or expired).
    #[error("{0}")]
    InvitationClosed(String),
    /// The token presented does not open any invitation.
    #[error("the invitation token is not valid")]
    InvitationTokenInvalid,
    /// The token was right but the invitation is over (revoked or expired).
    #[error("{0}")]
    InvitationGone(String),
    /// An emailed link's token opens nothing (malformed, unknown, or replaced by a newer
    /// link).
    #[error("the link is not valid (a newer one may have replaced it)")]
    LinkInvalid,
    /// An emailed link's token was right, but it was used already or has expired.
    #[error("{0}")]
    LinkGone(String),
    /// The address belongs to another account of the tenant.
    #[error("the address belongs to another account in this tenant")]
    EmailTaken,
    #[error("the import does not exist")]
    ImportNotFound,
    /// The import can no longer change as asked (completed, failed or cancelled).
    #[error("{0}")]
    ImportClosed(String),
    /// The tenant's signup policy does not admit this self-signup.
    #[error("{0}")]
    SignupRefused(String),
}
