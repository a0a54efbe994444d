//! The read models: one projection per model, each a pure function of the events applied
//! in order. Handlers write to `<table><suffix>`, so a replay can build the same tables
//! beside the live ones (`_staging`) with the same code.

use deadpool_postgres::Object;
use domain::event::{ClearableField, LoginFailure, RevocationReason};
use domain::{DomainEvent, SessionEvent, TenantEvent, UserEvent};
use eventstore::RecordedEvent;
use infra::crypto::KeyRing;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::emails::EmailPolicy;

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event itself cannot be applied (undecodable, inconsistent): dead-letter it.
    #[error("{0}")]
    Poison(String),
    /// The database failed: try again later, the event is fine.
    #[error("database error: {0}")]
    Transient(#[from] tokio_postgres::Error),
}

impl HandlerError {
    /// Database errors about the data itself (SQLSTATE classes 22 and 23) will fail the same
    /// way every time: they are poison, not transient.
    pub fn classify(error: tokio_postgres::Error) -> Self {
        match error.code().map(|c| &c.code()[..2]) {
            Some("22" | "23") => HandlerError::Poison(match error.as_db_error() {
                // The server's own words (which constraint, which value) tell an operator
                // what to fix; the bare error only says "db error".
                Some(db) => format!("{} ({})", db.message(), db.code().code()),
                None => error.to_string(),
            }),
            _ => HandlerError::Transient(error),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Projection {
    Tenants,
    Users,
    Memberships,
    Sessions,
    Activity,
    Audit,
    /// The search index (Tantivy, on disk); not a Postgres read model.
    Search,
    /// The email queue: never replayed (a replay would mail people twice).
    EmailJobs,
}

/// What handlers need beyond the event: the keys that open other streams' personal data
/// and the email policy.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub keys: &'a KeyRing,
    pub email: EmailPolicy,
}

impl Projection {
    /// Every projection, the search index and the email queue included.
    pub const EVERY: [Projection; 8] = [
        Projection::Tenants,
        Projection::Users,
        Projection::Memberships,
        Projection::Sessions,
        Projection::Activity,
        Projection::Audit,
        Projection::Search,
        Projection::EmailJobs,
    ];

    /// The Postgres read models.
    pub const ALL: [Projection; 6] = [
        Projection::Tenants,
        Projection::Users,
        Projection::Memberships,
        Projection::Sessions,
        Projection::Activity,
        Projection::Audit,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Projection::Tenants => "tenants",
            Projection::Users => "users",
            Projection::Memberships => "memberships",
            Projection::Sessions => "sessions",
            Projection::Activity => "activity",
            Projection::Audit => "audit",
            Projection::Search => "search",
            Projection::EmailJobs => "email-jobs",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::EVERY.into_iter().find(|p| p.name() == name)
    }

    /// The tables the projection owns (each has a `tenant_id` column).
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            Projection::Tenants => &["rm_tenants"],
            Projection::Users => &["rm_users"],
            Projection::Memberships => &["rm_memberships"],
            Projection::Sessions => &["rm_sessions"],
            Projection::Activity => &["rm_activity"],
            Projection::Audit => &["rm_audit"],
            Projection::Search | Projection::EmailJobs => &[],
        }
    }

    /// Applies one event (with personal data already decrypted) to the projection's tables.
    pub async fn apply(
        &self,
        client: &Object,
        env: Env<'_>,
        event: &RecordedEvent,
        suffix: &str,
    ) -> Result<(), HandlerError> {
        if *self == Projection::EmailJobs {
            let domain = event
                .to_domain()
                .map_err(|e| HandlerError::Poison(e.to_string()))?;
            return crate::emails::apply(client, env.keys, &env.email, event, &domain).await;
        }
        let mut statements = Vec::new();
        self.statements(event, suffix, &mut statements)?;
        execute_pipelined(client, &statements).await
    }

    /// Whether the projection reads personal fields (names, email, phone): only then are an
    /// event's sealed fields opened for it. The others (memberships, sessions, activity,
    /// audit) never store personal data and skip the key lookups and decryption.
    pub fn needs_personal_data(&self) -> bool {
        matches!(
            self,
            Projection::Tenants | Projection::Users | Projection::Search | Projection::EmailJobs
        )
    }

    /// Whether an event's effect is a list of statements computed from the event alone
    /// (every Postgres read model, and the search index, which has none here), so that a
    /// page of events can be sent to Postgres at once. The email queue reads other streams.
    /// (A replay of the users model folds its pages instead: `crate::users`.)
    pub fn is_pipelined(&self) -> bool {
        *self != Projection::EmailJobs
    }

    /// Adds to `out` the statements that apply one event (personal data already decrypted)
    /// to the projection's tables (`<table><suffix>`).
    pub fn statements(
        &self,
        event: &RecordedEvent,
        suffix: &str,
        out: &mut Vec<Statement>,
    ) -> Result<(), HandlerError> {
        let domain = event
            .to_domain()
            .map_err(|e| HandlerError::Poison(e.to_string()))?;
        let mut writer = Writer { suffix, out };
        match self {
            Projection::Tenants => tenants(&mut writer, event, &domain),
            Projection::Memberships => memberships(&mut writer, event, &domain),
            Projection::Sessions => sessions(&mut writer, event, &domain),
            Projection::Activity => activity(&mut writer, event, &domain),
            Projection::Audit => audit(&mut writer, event, &domain),
            Projection::Users => users(&mut writer, event, &domain),
            // Not statements: see `is_pipelined`.
            Projection::Search | Projection::EmailJobs => Ok(()),
        }
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

/// One statement of a read model with its own copy of its parameters.
pub struct Statement {
    sql: String,
    params: Vec<Param>,
}

impl Statement {
    /// A statement without parameters (a savepoint).
    pub fn bare(sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }
}

/// The parameters of a statement, each copied (`to_owned`) out of the event.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new(($value).to_owned()) as Param),*]
    };
}

struct Writer<'a> {
    suffix: &'a str,
    out: &'a mut Vec<Statement>,
}

impl Writer<'_> {
    /// Adds `sql` with `{t}` replaced by the target table's name (live or staging).
    fn run(&mut self, sql: &str, table: &str, params: Vec<Param>) {
        let sql = sql.replace("{t}", &format!("{table}{}", self.suffix));
        self.out.push(Statement { sql, params });
    }
}

/// Runs statements in order on one connection, pipelined: every statement is sent before
/// the first answer is awaited (tokio-postgres sends requests in the order their futures
/// are first polled), so a page of events costs one round trip instead of one per
/// statement. Postgres executes them in that order; after a failure the rest of the
/// transaction fails too, and the first error is returned.
pub async fn execute_pipelined(
    client: &Object,
    statements: &[Statement],
) -> Result<(), HandlerError> {
    let mut prepared = Vec::with_capacity(statements.len());
    for statement in statements {
        prepared.push(
            client
                .prepare_cached(&statement.sql)
                .await
                .map_err(HandlerError::classify)?,
        );
    }
    let pending = statements
        .iter()
        .zip(&prepared)
        .map(|(statement, prepared)| {
            Box::pin(client.execute_raw(
                prepared,
                statement.params.iter().map(|p| &**p as &(dyn ToSql + Sync)),
            ))
        })
        .collect();
    let answers = infra::db::pipelined(pending).await;
    let mut first_error = None;
    for result in answers {
        if let (Err(error), None) = (result, &first_error) {
            first_error = Some(error);
        }
    }
    match first_error {
        Some(error) => Err(HandlerError::classify(error)),
        None => Ok(()),
    }
}

fn tenants(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    if let DomainEvent::Tenant {
        event:
            TenantEvent::Created {
                tenant_id,
                name,
                plan,
                admin_user_id,
            },
        ..
    } = domain
    {
        writer.run(
            "INSERT INTO {t} (tenant_id, name, plan, admin_user_id, created_at, last_position)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO NOTHING",
            "rm_tenants",
            params![
                tenant_id,
                name,
                plan.as_str(),
                admin_user_id,
                event.occurred_at,
                event.position
            ],
        );
    }
    Ok(())
}

fn users(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    let DomainEvent::User {
        user_id,
        event: user_event,
    } = domain
    else {
        return Ok(());
    };
    let table = "rm_users";
    let (at, version, position) = (&event.occurred_at, &event.sequence, &event.position);
    match user_event {
        UserEvent::Created {
            tenant_id,
            email,
            display_name,
            ..
        } => {
            writer
                .run(
                    "INSERT INTO {t} (user_id, tenant_id, email, display_name, status, created_at, updated_at,
                                      version, last_position)
                     VALUES ($1, $2, $3, $4, 'active', $5, $5, $6, $7) ON CONFLICT (user_id) DO NOTHING",
                    table,
                    params![user_id, tenant_id, email, display_name, at, version, position],
                );
        }
        UserEvent::MemberJoined { role, .. }
        | UserEvent::MemberRoleChanged { new_role: role, .. } => {
            writer
                .run(
                    "UPDATE {t} SET role = $2, updated_at = $3, version = $4, last_position = $5 WHERE user_id = $1",
                    table,
                    params![user_id, role.as_str(), at, version, position],
                );
        }
        UserEvent::ProfileUpdated {
            display_name,
            phone,
            locale,
            cleared,
            ..
        } => {
            let clear_phone = cleared.contains(&ClearableField::Phone);
            writer.run(
                "UPDATE {t} SET display_name = coalesce($2, display_name),
                                    phone = CASE WHEN $3 THEN NULL ELSE coalesce($4, phone) END,
                                    locale = coalesce($5, locale),
                                    updated_at = $6, version = $7, last_position = $8
                      WHERE user_id = $1",
                table,
                params![
                    user_id,
                    display_name,
                    clear_phone,
                    phone,
                    locale,
                    at,
                    version,
                    position
                ],
            );
        }
        UserEvent::Deactivated { .. } | UserEvent::Reactivated { .. } => {
            let status = if matches!(user_event, UserEvent::Deactivated { .. }) {
                "deactivated"
            } else {
                "active"
            };
            writer
                .run(
                    "UPDATE {t} SET status = $2, updated_at = $3, version = $4, last_position = $5 WHERE user_id = $1",
                    table,
                    params![user_id, status, at, version, position],
                );
        }
        UserEvent::Deleted { .. } => {
            // Erasure: nothing of the person stays in the read model.
            writer.run(
                "DELETE FROM {t} WHERE user_id = $1",
                table,
                params![user_id],
            );
        }
        UserEvent::LoginFailed { .. }
        | UserEvent::MemberRemoved { .. }
        | UserEvent::PlatformAdminGranted { .. } => {
            writer.run(
                "UPDATE {t} SET version = $2, last_position = $3 WHERE user_id = $1",
                table,
                params![user_id, version, position],
            );
        }
    }
    Ok(())
}

fn memberships(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    let DomainEvent::User {
        user_id,
        event: user_event,
    } = domain
    else {
        return Ok(());
    };
    let table = "rm_memberships";
    let (tenant_id, at, position) = (&event.tenant_id, &event.occurred_at, &event.position);
    match user_event {
        UserEvent::MemberJoined { role, .. } => {
            writer
                .run(
                    "INSERT INTO {t} (tenant_id, user_id, role, status, joined_at, updated_at, last_position)
                     VALUES ($1, $2, $3, 'active', $4, $4, $5) ON CONFLICT (tenant_id, user_id) DO NOTHING",
                    table,
                    params![tenant_id, user_id, role.as_str(), at, position],
                );
        }
        UserEvent::MemberRoleChanged { new_role, .. } => {
            writer
                .run(
                    "UPDATE {t} SET role = $3, updated_at = $4, last_position = $5 WHERE tenant_id = $1 AND user_id = $2",
                    table,
                    params![tenant_id, user_id, new_role.as_str(), at, position],
                );
        }
        UserEvent::Deactivated { .. } | UserEvent::Reactivated { .. } => {
            let status = if matches!(user_event, UserEvent::Deactivated { .. }) {
                "deactivated"
            } else {
                "active"
            };
            writer
                .run(
                    "UPDATE {t} SET status = $3, updated_at = $4, last_position = $5 WHERE tenant_id = $1 AND user_id = $2",
                    table,
                    params![tenant_id, user_id, status, at, position],
                );
        }
        UserEvent::MemberRemoved { .. } | UserEvent::Deleted { .. } => {
            writer.run(
                "DELETE FROM {t} WHERE tenant_id = $1 AND user_id = $2",
                table,
                params![tenant_id, user_id],
            );
        }
        UserEvent::Created { .. }
        | UserEvent::LoginFailed { .. }
        | UserEvent::ProfileUpdated { .. }
        | UserEvent::PlatformAdminGranted { .. } => {}
    }
    Ok(())
}

fn sessions(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    let table = "rm_sessions";
    let (at, position) = (&event.occurred_at, &event.position);
    match domain {
        DomainEvent::Session {
            session_id,
            event: session_event,
        } => match session_event {
            SessionEvent::LoggedIn {
                user_id,
                tenant_id,
                expires_at,
                ..
            } => {
                writer
                    .run(
                        "INSERT INTO {t} (session_id, tenant_id, user_id, created_at, expires_at, last_position)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING",
                        table,
                        params![session_id, tenant_id, user_id, at, expires_at, position],
                    );
            }
            SessionEvent::Refreshed { expires_at, .. } => {
                writer
                    .run(
                        "UPDATE {t} SET expires_at = $2, last_refreshed_at = $3, last_position = $4 WHERE session_id = $1",
                        table,
                        params![session_id, expires_at, at, position],
                    );
            }
            SessionEvent::Revoked { reason, .. } => {
                writer
                    .run(
                        "UPDATE {t} SET revoked_at = coalesce(revoked_at, $2), revoke_reason = coalesce(revoke_reason, $3),
                                        last_position = $4 WHERE session_id = $1",
                        table,
                        params![session_id, at, revocation_reason(*reason), position],
                    );
            }
        },
        DomainEvent::User {
            user_id,
            event: UserEvent::Deactivated { .. },
        } => {
            writer
                .run(
                    "UPDATE {t} SET revoked_at = $2, revoke_reason = 'user_deactivated', last_position = $3
                      WHERE user_id = $1 AND revoked_at IS NULL",
                    table,
                    params![user_id, at, position],
                );
        }
        DomainEvent::User {
            user_id,
            event: UserEvent::Deleted { .. },
        } => {
            writer.run(
                "DELETE FROM {t} WHERE user_id = $1",
                table,
                params![user_id],
            );
        }
        _ => {}
    }
    Ok(())
}

fn revocation_reason(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Logout => "logout",
        RevocationReason::RevokedByAdmin => "revoked_by_admin",
        RevocationReason::RefreshTokenReused => "refresh_token_reused",
    }
}

/// The activity of a user (seed US-10): what they did or what was done to their account.
fn activity_of(domain: &DomainEvent) -> Option<(Uuid, &'static str, Value)> {
    match domain {
        DomainEvent::User { user_id, event } => match event {
            UserEvent::Created { .. } => Some((*user_id, "signed_up", json!({}))),
            UserEvent::LoginFailed { reason, .. } => Some((
                *user_id,
                "login_failed",
                json!({"reason": match reason { LoginFailure::InvalidPassword => "invalid_password", LoginFailure::Deactivated => "deactivated" }}),
            )),
            UserEvent::ProfileUpdated {
                display_name,
                phone,
                locale,
                cleared,
                ..
            } => {
                let mut fields: Vec<&str> = Vec::new();
                if display_name.is_some() {
                    fields.push("display_name");
                }
                if phone.is_some() || cleared.contains(&ClearableField::Phone) {
                    fields.push("phone");
                }
                if locale.is_some() {
                    fields.push("locale");
                }
                Some((*user_id, "profile_updated", json!({"fields": fields})))
            }
            UserEvent::MemberRoleChanged {
                old_role, new_role, ..
            } => Some((
                *user_id,
                "role_changed",
                json!({"old_role": old_role.as_str(), "new_role": new_role.as_str()}),
            )),
            UserEvent::Deactivated { .. } => Some((*user_id, "deactivated", json!({}))),
            UserEvent::Reactivated { .. } => Some((*user_id, "reactivated", json!({}))),
            UserEvent::Deleted { .. } => Some((*user_id, "erased", json!({}))),
            UserEvent::MemberJoined { .. } | UserEvent::MemberRemoved { .. } => None,
            UserEvent::PlatformAdminGranted { .. } => {
                Some((*user_id, "platform_admin_granted", json!({})))
            }
        },
        DomainEvent::Session { session_id, event } => match event {
            SessionEvent::LoggedIn { user_id, .. } => {
                Some((*user_id, "logged_in", json!({"session_id": session_id})))
            }
            SessionEvent::Revoked {
                user_id, reason, ..
            } => Some((
                *user_id,
                "session_revoked",
                json!({"session_id": session_id, "reason": revocation_reason(*reason)}),
            )),
            SessionEvent::Refreshed { .. } => None,
        },
        DomainEvent::Tenant { .. } => None,
    }
}

fn activity(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    if let Some((user_id, action, details)) = activity_of(domain) {
        writer
            .run(
                "INSERT INTO {t} (event_id, tenant_id, position, user_id, actor_id, action, details, occurred_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
                "rm_activity",
                params![event.event_id, event.tenant_id, event.position, user_id, event.metadata.actor_id, action, details, event.occurred_at],
            );
    }
    Ok(())
}

/// A one-line description of an event that never contains personal data.
pub fn summary(domain: &DomainEvent) -> (Option<Uuid>, String) {
    match domain {
        DomainEvent::Tenant {
            tenant_id,
            event:
                TenantEvent::Created {
                    plan,
                    admin_user_id,
                    ..
                },
        } => (
            Some(*admin_user_id),
            format!("tenant {tenant_id} created on the {} plan", plan.as_str()),
        ),
        DomainEvent::Tenant {
            tenant_id,
            event:
                TenantEvent::RateLimitChanged {
                    requests_per_hour, ..
                },
        } => (
            None,
            match requests_per_hour {
                Some(limit) => format!("tenant {tenant_id} limited to {limit} requests an hour"),
                None => format!("tenant {tenant_id} back to its plan's request limit"),
            },
        ),
        DomainEvent::User { user_id, event } => {
            let text = match event {
                UserEvent::Created { .. } => "user signed up".to_owned(),
                UserEvent::MemberJoined { role, .. } => {
                    format!("user joined the tenant as {}", role.as_str())
                }
                UserEvent::LoginFailed { reason, .. } => format!(
                    "login failed ({})",
                    match reason {
                        LoginFailure::InvalidPassword => "invalid password",
                        LoginFailure::Deactivated => "account deactivated",
                    }
                ),
                UserEvent::ProfileUpdated { .. } => match activity_of(domain) {
                    Some((_, _, details)) => format!("profile updated: {}", fields_list(&details)),
                    None => "profile updated".to_owned(),
                },
                UserEvent::MemberRoleChanged {
                    old_role, new_role, ..
                } => {
                    format!(
                        "role changed from {} to {}",
                        old_role.as_str(),
                        new_role.as_str()
                    )
                }
                UserEvent::Deactivated { by_admin, .. } => {
                    if *by_admin {
                        "user deactivated by an administrator".to_owned()
                    } else {
                        "user deactivated".to_owned()
                    }
                }
                UserEvent::Reactivated { .. } => "user reactivated".to_owned(),
                UserEvent::MemberRemoved { .. } => "user removed from the tenant".to_owned(),
                UserEvent::Deleted { .. } => "user erased; personal data destroyed".to_owned(),
                UserEvent::PlatformAdminGranted { .. } => {
                    "user made a platform administrator".to_owned()
                }
            };
            (Some(*user_id), text)
        }
        DomainEvent::Session { session_id, event } => match event {
            SessionEvent::LoggedIn { user_id, .. } => {
                (Some(*user_id), format!("logged in (session {session_id})"))
            }
            SessionEvent::Refreshed { user_id, .. } => {
                (Some(*user_id), format!("session {session_id} refreshed"))
            }
            SessionEvent::Revoked {
                user_id, reason, ..
            } => (
                Some(*user_id),
                format!(
                    "session {session_id} revoked ({})",
                    revocation_reason(*reason).replace('_', " ")
                ),
            ),
        },
    }
}

fn fields_list(details: &Value) -> String {
    details["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn audit(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    let (subject_id, summary) = summary(domain);
    writer
        .run(
            "INSERT INTO {t} (event_id, tenant_id, position, event_type, aggregate_type, aggregate_id, actor_id,
                              subject_id, summary, occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING",
            "rm_audit",
            params![event.event_id, event.tenant_id, event.position, event.event_type, event.aggregate_type, event.aggregate_id, event.metadata.actor_id, subject_id, summary, event.occurred_at],
        );
    Ok(())
}
