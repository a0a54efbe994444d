//! One event of every type, as the contract tests and the schema tests both use them.

#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use domain::event::{
    ImportCounts, ImportEvent, InvitationEvent, LoginFailure, RemovalReason, RevocationReason,
    RowError, SessionEvent, TeamDeparture, TeamEvent, TenantEvent, UserEvent, WebhookEvent,
};
use domain::{DomainEvent, Plan, Role};
use uuid::Uuid;

pub const TENANT: Uuid = Uuid::from_u128(1);
pub const USER: Uuid = Uuid::from_u128(2);
pub const SESSION: Uuid = Uuid::from_u128(3);
pub const ADMIN: Uuid = Uuid::from_u128(4);
pub const TEAM: Uuid = Uuid::from_u128(5);
pub const INVITATION: Uuid = Uuid::from_u128(6);
pub const IMPORT: Uuid = Uuid::from_u128(7);
pub const WEBHOOK: Uuid = Uuid::from_u128(8);

/// Personal values the samples carry; none may appear outside the personal fields.
pub const PERSONAL: [&str; 5] = [
    "ada@example.com",
    "Ada Lovelace",
    "+4915112345678",
    "$argon2id$v=19$x",
    "Mozilla/5.0 (X11; Linux x86_64)",
];

/// One event of every type.
pub fn every_event() -> Vec<DomainEvent> {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let tenant = |event| DomainEvent::Tenant {
        tenant_id: TENANT,
        event,
    };
    let user = |event| DomainEvent::User {
        user_id: USER,
        event,
    };
    let session = |event| DomainEvent::Session {
        session_id: SESSION,
        event,
    };
    let team = |event| DomainEvent::Team {
        team_id: TEAM,
        event,
    };
    let invitation = |event| DomainEvent::Invitation {
        invitation_id: INVITATION,
        event,
    };
    let import = |event| DomainEvent::Import {
        import_id: IMPORT,
        event,
    };
    let webhook = |event| DomainEvent::Webhook {
        webhook_id: WEBHOOK,
        event,
    };
    let counts = ImportCounts {
        processed: 3,
        created: 1,
        skipped: 1,
        failed: 1,
    };
    vec![
        import(ImportEvent::Started {
            import_id: IMPORT,
            tenant_id: TENANT,
            format: "csv".into(),
            total: 3,
            started_by: ADMIN,
        }),
        import(ImportEvent::Progressed {
            import_id: IMPORT,
            counts,
            errors: vec![RowError {
                row: 2,
                reason: "email: must look like name@example.com".into(),
            }],
        }),
        import(ImportEvent::Completed {
            import_id: IMPORT,
            counts,
        }),
        import(ImportEvent::Failed {
            import_id: IMPORT,
            counts,
            reason: "the uploaded rows are gone".into(),
        }),
        import(ImportEvent::Cancelled {
            import_id: IMPORT,
            counts,
            cancelled_by: Some(ADMIN),
        }),
        webhook(WebhookEvent::Created {
            webhook_id: WEBHOOK,
            tenant_id: TENANT,
            url: "https://hooks.example.com/eventra".into(),
            event_types: vec!["user.created".into(), "user.deleted".into()],
            description: Some("CRM".into()),
            secret_version: 1,
            created_by: ADMIN,
        }),
        webhook(WebhookEvent::Updated {
            webhook_id: WEBHOOK,
            url: None,
            event_types: Some(vec!["*".into()]),
            enabled: Some(false),
            updated_by: ADMIN,
        }),
        webhook(WebhookEvent::SecretRotated {
            webhook_id: WEBHOOK,
            secret_version: 2,
            rotated_by: ADMIN,
        }),
        webhook(WebhookEvent::Disabled {
            webhook_id: WEBHOOK,
            reason: "failing".into(),
            failing_since: chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default(),
            last_error: "the endpoint answered 500".into(),
        }),
        webhook(WebhookEvent::Deleted {
            webhook_id: WEBHOOK,
            deleted_by: ADMIN,
        }),
        team(TeamEvent::Created {
            team_id: TEAM,
            tenant_id: TENANT,
            name: "Front desk".into(),
            description: Some("Reception".into()),
            created_by: ADMIN,
        }),
        team(TeamEvent::Updated {
            team_id: TEAM,
            name: Some("Night desk".into()),
            description: Some(String::new()),
            updated_by: ADMIN,
        }),
        team(TeamEvent::Deleted {
            team_id: TEAM,
            deleted_by: ADMIN,
        }),
        team(TeamEvent::MembersAdded {
            team_id: TEAM,
            user_ids: vec![USER],
            added_by: ADMIN,
        }),
        team(TeamEvent::MembersRemoved {
            team_id: TEAM,
            user_ids: vec![USER],
            removed_by: ADMIN,
            reason: TeamDeparture::LeftTenant,
        }),
        invitation(InvitationEvent::Created {
            invitation_id: INVITATION,
            tenant_id: TENANT,
            user_id: USER,
            email: PERSONAL[0].into(),
            role: Role::Member,
            team_ids: vec![TEAM],
            token_hash: "2".repeat(64),
            expires_at: at,
            invited_by: ADMIN,
            import_id: None,
        }),
        invitation(InvitationEvent::Resent {
            invitation_id: INVITATION,
            token_hash: "3".repeat(64),
            expires_at: at,
            resent_by: ADMIN,
        }),
        invitation(InvitationEvent::Revoked {
            invitation_id: INVITATION,
            revoked_by: ADMIN,
        }),
        invitation(InvitationEvent::Accepted {
            invitation_id: INVITATION,
            user_id: USER,
            new_account: true,
        }),
        invitation(InvitationEvent::Expired {
            invitation_id: INVITATION,
            expires_at: at,
        }),
        tenant(TenantEvent::Created {
            tenant_id: TENANT,
            name: "Acme".into(),
            plan: Plan::Premium,
            admin_user_id: USER,
        }),
        tenant(TenantEvent::RateLimitChanged {
            tenant_id: TENANT,
            requests_per_hour: Some(10),
        }),
        tenant(TenantEvent::SettingsChanged {
            tenant_id: TENANT,
            name: Some("Acme".into()),
            signup_policy: Some(domain::SignupPolicy::EmailDomain),
            allowed_domains: Some(vec!["acme.example".into()]),
            deletion_grace_days: Some(14),
            invitation_expiry_notices: Some(false),
            require_verified_email: None,
            changed_by: ADMIN,
        }),
        user(UserEvent::Created {
            user_id: USER,
            tenant_id: TENANT,
            email: PERSONAL[0].into(),
            display_name: PERSONAL[1].into(),
            password_hash: PERSONAL[3].into(),
            email_verification: Some(domain::event::EmailLink {
                token_hash: "9f86d081884c7d65".into(),
                expires_at: at,
            }),
            source: Some(domain::event::UserSource::Import),
        }),
        user(UserEvent::MemberJoined {
            tenant_id: TENANT,
            user_id: USER,
            role: Role::Member,
        }),
        user(UserEvent::LoginFailed {
            user_id: USER,
            reason: LoginFailure::InvalidPassword,
        }),
        user(
            UserEvent::profile_updated(
                USER,
                Some(PERSONAL[1].into()),
                Some(Some(PERSONAL[2].into())),
                Some("de".into()),
                USER,
            )
            .expect("a change"),
        ),
        user(UserEvent::MemberRoleChanged {
            tenant_id: TENANT,
            user_id: USER,
            old_role: Role::Member,
            new_role: Role::Admin,
            changed_by: ADMIN,
        }),
        user(UserEvent::Deactivated {
            user_id: USER,
            deactivated_by: ADMIN,
            by_admin: true,
        }),
        user(UserEvent::Reactivated {
            user_id: USER,
            reactivated_by: ADMIN,
        }),
        user(UserEvent::MemberRemoved {
            tenant_id: TENANT,
            user_id: USER,
            removed_by: ADMIN,
            reason: RemovalReason::Removed,
        }),
        user(UserEvent::PlatformAdminGranted { user_id: USER }),
        user(UserEvent::Locked {
            user_id: USER,
            until: at,
            failures: 5,
        }),
        user(UserEvent::Unlocked {
            user_id: USER,
            unlocked_by: None,
        }),
        user(UserEvent::PasswordChanged {
            user_id: USER,
            password_hash: PERSONAL[3].into(),
            changed_by: USER,
        }),
        user(UserEvent::PasswordResetRequested {
            user_id: USER,
            token_hash: "9f86d081884c7d65".into(),
            expires_at: at,
        }),
        user(UserEvent::PasswordReset {
            user_id: USER,
            password_hash: PERSONAL[3].into(),
        }),
        user(UserEvent::EmailChangeRequested {
            user_id: USER,
            new_email: PERSONAL[0].into(),
            token_hash: "9f86d081884c7d65".into(),
            expires_at: at,
        }),
        user(UserEvent::EmailVerified { user_id: USER }),
        user(UserEvent::EmailChanged {
            user_id: USER,
            old_email: "old-ada@example.com".into(),
            email: PERSONAL[0].into(),
        }),
        user(UserEvent::DeletionScheduled {
            user_id: USER,
            purge_at: at,
            scheduled_by: ADMIN,
            by_self: false,
        }),
        user(UserEvent::DeletionCancelled {
            user_id: USER,
            cancelled_by: ADMIN,
            status: domain::UserStatus::Active,
        }),
        user(UserEvent::Deleted {
            user_id: USER,
            deleted_by: ADMIN,
            erasure: true,
        }),
        session(SessionEvent::LoggedIn {
            session_id: SESSION,
            user_id: USER,
            tenant_id: TENANT,
            refresh_token_hash: "0".repeat(64),
            expires_at: at,
            user_agent: Some(PERSONAL[4].into()),
        }),
        session(SessionEvent::Refreshed {
            session_id: SESSION,
            user_id: USER,
            refresh_token_hash: "1".repeat(64),
            expires_at: at,
        }),
        session(SessionEvent::Revoked {
            session_id: SESSION,
            user_id: USER,
            revoked_by: Some(ADMIN),
            reason: RevocationReason::RefreshTokenReused,
        }),
    ]
}

/// The event as the store would split it: its serialised type tag and its data.
pub fn serialised(event: &DomainEvent) -> (String, serde_json::Value) {
    let value = match event {
        DomainEvent::Tenant { event, .. } => serde_json::to_value(event),
        DomainEvent::User { event, .. } => serde_json::to_value(event),
        DomainEvent::Session { event, .. } => serde_json::to_value(event),
        DomainEvent::Team { event, .. } => serde_json::to_value(event),
        DomainEvent::Invitation { event, .. } => serde_json::to_value(event),
        DomainEvent::Import { event, .. } => serde_json::to_value(event),
        DomainEvent::Webhook { event, .. } => serde_json::to_value(event),
    }
    .expect("serialise");
    (
        value["type"].as_str().unwrap_or_default().to_owned(),
        value["data"].clone(),
    )
}
