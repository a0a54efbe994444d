//! Bulk data through the same store code the command API uses: domain decisions, unique
//! email reservations, per-user data keys, encrypted personal fields, one transaction per
//! batch. Only the password hash is computed once and shared (hashing is what makes signup
//! slow, and it is measured on its own).

use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use domain::user::SignUpUser;
use domain::values::normalise_email;
use domain::{Actor, Context, DomainEvent, Plan, Tenant, TenantEvent, UserEvent};
use infra::envelope::EventMetadata;
use infra::store::{EventStore, ExpectedVersion};
use uuid::Uuid;

const FIRST_NAMES: [&str; 20] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
    "Radia", "Tony", "Hedy", "Dennis", "Karen", "Leslie", "Shafi", "John", "Sophie", "Tim",
];

/// The display name of generated user `n`: a first name from a small list (so a search for
/// it matches about one user in twenty) and a unique last name.
pub fn display_name(n: u64) -> String {
    format!(
        "{} Benchmark{n}",
        FIRST_NAMES[(n % FIRST_NAMES.len() as u64) as usize]
    )
}

pub fn first_names() -> &'static [&'static str] {
    &FIRST_NAMES
}

fn metadata() -> EventMetadata {
    EventMetadata {
        source: "eventra-bench".into(),
        ..Default::default()
    }
}

/// A tenant created through the store (for a database the API does not serve).
pub async fn tenant(store: &EventStore, name: &str) -> anyhow::Result<Uuid> {
    let tenant_id = Uuid::now_v7();
    let unit = store.begin().await?;
    unit.append(
        tenant_id,
        &[ExpectedVersion {
            aggregate_id: tenant_id,
            version: 0,
        }],
        &[DomainEvent::Tenant {
            tenant_id,
            event: TenantEvent::Created {
                tenant_id,
                name: name.to_owned(),
                plan: Plan::Standard,
                admin_user_id: Uuid::now_v7(),
            },
        }],
        &metadata(),
        Utc::now(),
    )
    .await?;
    unit.commit().await?;
    Ok(tenant_id)
}

/// What a bulk load wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub events: u64,
    pub last_position: i64,
}

/// `users` new users of `tenant_id` (numbered from `first`), each with `updates` profile
/// updates after signing up, written by `parallel` tasks in batches of `batch` users.
pub async fn users(
    store: &EventStore,
    tenant_id: Uuid,
    first: u64,
    users: u64,
    updates: u32,
    password_hash: &str,
    parallel: u64,
) -> anyhow::Result<Loaded> {
    const BATCH: u64 = 100;
    let password_hash: Arc<str> = Arc::from(password_hash);
    let mut tasks = tokio::task::JoinSet::new();
    let share = users.div_ceil(parallel.max(1));
    for task in 0..parallel.max(1) {
        let start = first + task * share;
        let end = (start + share).min(first + users);
        if start >= end {
            continue;
        }
        let store = store.clone();
        let password_hash = Arc::clone(&password_hash);
        tasks.spawn(async move {
            let mut loaded = Loaded::default();
            let mut n = start;
            while n < end {
                let batch_end = (n + BATCH).min(end);
                let written =
                    batch(&store, tenant_id, n..batch_end, updates, &password_hash).await?;
                loaded.events += written.events;
                loaded.last_position = loaded.last_position.max(written.last_position);
                n = batch_end;
            }
            Ok::<_, anyhow::Error>(loaded)
        });
    }
    let mut total = Loaded::default();
    while let Some(result) = tasks.join_next().await {
        let loaded = result.context("a generator task")??;
        total.events += loaded.events;
        total.last_position = total.last_position.max(loaded.last_position);
    }
    Ok(total)
}

async fn batch(
    store: &EventStore,
    tenant_id: Uuid,
    numbers: std::ops::Range<u64>,
    updates: u32,
    password_hash: &str,
) -> anyhow::Result<Loaded> {
    let tenant = Tenant {
        tenant_id: Some(tenant_id),
        ..Default::default()
    };
    let context = Context {
        actor: Actor::Anonymous,
        now: Utc::now(),
    };
    let unit = store.begin().await?;
    let mut loaded = Loaded::default();
    for n in numbers {
        let user_id = Uuid::now_v7();
        let email = format!("bench-{n}-{}@bench.example.com", tenant_id.simple());
        let mut events = domain::user::sign_up(
            &tenant,
            &domain::User::default(),
            SignUpUser {
                user_id,
                tenant_id,
                email: email.clone(),
                display_name: display_name(n),
                password_hash: password_hash.to_owned(),
            },
            &context,
        )?;
        for update in 0..updates {
            events.push(UserEvent::ProfileUpdated {
                user_id,
                display_name: Some(format!("{} v{update}", display_name(n))),
                phone: None,
                locale: Some(if update % 2 == 0 {
                    "en".into()
                } else {
                    "de".into()
                }),
                cleared: Vec::new(),
                updated_by: user_id,
            });
        }
        let hash = unit.keys().blind_index("email", &normalise_email(&email));
        unit.reserve(tenant_id, "email", &hash, user_id).await?;
        let appended = unit
            .append(
                tenant_id,
                &[ExpectedVersion {
                    aggregate_id: user_id,
                    version: 0,
                }],
                &DomainEvent::user(user_id, events),
                &metadata(),
                context.now,
            )
            .await?;
        loaded.events += appended.len() as u64;
        if let Some(last) = appended.last() {
            loaded.last_position = loaded.last_position.max(last.position);
        }
    }
    unit.commit().await?;
    Ok(loaded)
}
