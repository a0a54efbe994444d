//! The users read model (`rm_users`) folded, for replays: the events of a page are applied
//! in memory to the rows they touch (read in one query), and each touched row is then
//! written once — every upsert in one statement, every deletion in another. A user's
//! history is many small updates (a profile edited again and again); writing each of them
//! as its own statement made a replay cost one statement per event.
//!
//! The live projection applies the statements of `projections::users` instead: measured
//! under load, reading the touched rows first made each small live batch slower (the
//! freshness of the read model suffered). Both must give the same table:
//! `projector::the_users_model_folded_for_replays_equals_the_live_one_and_the_rules` and
//! `a_replay_rebuilds_a_model_identical_to_the_live_one` compare them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use domain::{DomainEvent, UserEvent};
use eventstore::RecordedEvent;
use uuid::Uuid;

use crate::error::HandlerError;

const COLUMNS: &str = "user_id, tenant_id, email, display_name, phone, locale, role, status, \
                       created_at, updated_at, version, last_position, purge_at, email_verified";

/// One row of `rm_users`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    user_id: Uuid,
    tenant_id: Uuid,
    email: String,
    display_name: String,
    phone: Option<String>,
    locale: Option<String>,
    role: Option<String>,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    last_position: i64,
    purge_at: Option<DateTime<Utc>>,
    email_verified: bool,
}

/// What a page did to a user's row.
#[derive(Debug, Clone)]
enum Slot {
    /// No row (none stored, or none yet).
    Absent,
    /// The row as it stands; `changed` when it differs from what is stored.
    Present { row: Box<Row>, changed: bool },
    /// Erased: the stored row (if any) goes.
    Deleted,
}

/// Applies `events` (personal data opened) in order to `rm_users<suffix>`.
pub async fn apply(
    client: &Object,
    events: &[RecordedEvent],
    suffix: &str,
) -> Result<(), HandlerError> {
    let mut decoded = Vec::with_capacity(events.len());
    for event in events {
        let domain = event
            .to_domain()
            .map_err(|e| HandlerError::Poison(e.to_string()))?;
        if let DomainEvent::User {
            user_id,
            event: user_event,
        } = domain
        {
            decoded.push((event, user_id, user_event));
        }
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let table = format!("rm_users{suffix}");
    let mut ids: Vec<Uuid> = decoded.iter().map(|(_, id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let select = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM {table} WHERE user_id = ANY($1)"
        ))
        .await
        .map_err(HandlerError::classify)?;
    let mut slots: HashMap<Uuid, Slot> = ids.iter().map(|id| (*id, Slot::Absent)).collect();
    for stored in client
        .query(&select, &[&ids])
        .await
        .map_err(HandlerError::classify)?
    {
        let row = Row {
            user_id: stored.get(0),
            tenant_id: stored.get(1),
            email: stored.get(2),
            display_name: stored.get(3),
            phone: stored.get(4),
            locale: stored.get(5),
            role: stored.get(6),
            status: stored.get(7),
            created_at: stored.get(8),
            updated_at: stored.get(9),
            version: stored.get(10),
            last_position: stored.get(11),
            purge_at: stored.get(12),
            email_verified: stored.get(13),
        };
        slots.insert(
            row.user_id,
            Slot::Present {
                row: Box::new(row),
                changed: false,
            },
        );
    }
    for (event, user_id, user_event) in &decoded {
        if let Some(slot) = slots.get_mut(user_id) {
            fold(slot, event, *user_id, user_event);
        }
    }
    write(client, &table, slots).await
}

/// Applies one event to a user's slot, as the read model defines it.
fn fold(slot: &mut Slot, event: &RecordedEvent, user_id: Uuid, user_event: &UserEvent) {
    let (at, version, position) = (event.occurred_at, event.sequence, event.position);
    if let UserEvent::Created {
        tenant_id,
        email,
        display_name,
        ..
    } = user_event
    {
        if !matches!(slot, Slot::Present { .. }) {
            *slot = Slot::Present {
                row: Box::new(Row {
                    user_id,
                    tenant_id: *tenant_id,
                    email: email.clone(),
                    display_name: display_name.clone(),
                    phone: None,
                    locale: None,
                    role: None,
                    status: "active".into(),
                    created_at: at,
                    updated_at: at,
                    version,
                    last_position: position,
                    purge_at: None,
                    email_verified: false,
                }),
                changed: true,
            };
        }
        return;
    }
    if matches!(user_event, UserEvent::Deleted { .. }) {
        // Erasure: nothing of the person stays in the read model.
        *slot = Slot::Deleted;
        return;
    }
    let Slot::Present { row, changed } = slot else {
        return; // Nothing to update (as an UPDATE of a missing row).
    };
    *changed = true;
    row.version = version;
    row.last_position = position;
    match user_event {
        UserEvent::MemberJoined { role, .. }
        | UserEvent::MemberRoleChanged { new_role: role, .. } => {
            row.role = Some(role.as_str().to_owned());
            if row.status == "removed" {
                row.status = "active".into();
            }
            row.updated_at = at;
        }
        UserEvent::ProfileUpdated { .. } => {
            if let Some(delta) = user_event.profile_delta() {
                delta.apply(&mut row.display_name, &mut row.phone, &mut row.locale);
            }
            row.updated_at = at;
        }
        UserEvent::Deactivated { .. } => {
            row.status = "deactivated".into();
            row.updated_at = at;
        }
        UserEvent::Reactivated { .. } => {
            row.status = "active".into();
            row.updated_at = at;
        }
        UserEvent::MemberRemoved { .. } => {
            row.role = None;
            row.status = "removed".into();
            row.updated_at = at;
        }
        UserEvent::DeletionScheduled { purge_at, .. } => {
            if row.status != "removed" {
                row.status = "deletion_scheduled".into();
            }
            row.purge_at = Some(*purge_at);
            row.updated_at = at;
        }
        UserEvent::DeletionCancelled { status, .. } => {
            if row.status != "removed" {
                row.status = status.as_str().into();
            }
            row.purge_at = None;
            row.updated_at = at;
        }
        UserEvent::EmailVerified { .. } => {
            row.email_verified = true;
            row.updated_at = at;
        }
        UserEvent::EmailChanged { email, .. } => {
            row.email.clone_from(email);
            row.email_verified = true;
            row.updated_at = at;
        }
        UserEvent::LoginFailed { .. }
        | UserEvent::PasswordChanged { .. }
        | UserEvent::PasswordResetRequested { .. }
        | UserEvent::PasswordReset { .. }
        | UserEvent::EmailChangeRequested { .. }
        | UserEvent::Locked { .. }
        | UserEvent::Unlocked { .. }
        | UserEvent::PlatformAdminGranted { .. }
        | UserEvent::Created { .. }
        | UserEvent::Deleted { .. } => {}
    }
}

/// Writes the changed rows in one upsert and removes the erased ones in one deletion.
async fn write(
    client: &Object,
    table: &str,
    slots: HashMap<Uuid, Slot>,
) -> Result<(), HandlerError> {
    let mut deleted = Vec::new();
    let mut rows = Vec::new();
    for (user_id, slot) in slots {
        match slot {
            Slot::Deleted => deleted.push(user_id),
            Slot::Present { row, changed: true } => rows.push(*row),
            Slot::Present { changed: false, .. } | Slot::Absent => {}
        }
    }
    if !deleted.is_empty() {
        let statement = client
            .prepare_cached(&format!("DELETE FROM {table} WHERE user_id = ANY($1)"))
            .await
            .map_err(HandlerError::classify)?;
        client
            .execute(&statement, &[&deleted])
            .await
            .map_err(HandlerError::classify)?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO {table} ({COLUMNS})
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::timestamptz[],
                                  $10::timestamptz[], $11::bigint[], $12::bigint[],
                                  $13::timestamptz[], $14::bool[])
             ON CONFLICT (user_id) DO UPDATE SET
                 tenant_id = EXCLUDED.tenant_id, email = EXCLUDED.email,
                 display_name = EXCLUDED.display_name, phone = EXCLUDED.phone,
                 locale = EXCLUDED.locale, role = EXCLUDED.role, status = EXCLUDED.status,
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
                 version = EXCLUDED.version, last_position = EXCLUDED.last_position,
                 purge_at = EXCLUDED.purge_at, email_verified = EXCLUDED.email_verified"
        ))
        .await
        .map_err(HandlerError::classify)?;
    let column = |f: fn(&Row) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&Row) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&Row) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&Row) -> DateTime<Utc>| rows.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&Row) -> i64| rows.iter().map(f).collect::<Vec<_>>();
    client
        .execute(
            &statement,
            &[
                &column(|r| r.user_id),
                &column(|r| r.tenant_id),
                &text(|r| &r.email),
                &text(|r| &r.display_name),
                &optional(|r| r.phone.as_deref()),
                &optional(|r| r.locale.as_deref()),
                &optional(|r| r.role.as_deref()),
                &text(|r| &r.status),
                &time(|r| r.created_at),
                &time(|r| r.updated_at),
                &number(|r| r.version),
                &number(|r| r.last_position),
                &rows.iter().map(|r| r.purge_at).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.email_verified).collect::<Vec<_>>(),
            ],
        )
        .await
        .map_err(HandlerError::classify)?;
    Ok(())
}
