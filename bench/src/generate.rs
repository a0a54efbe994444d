//! Bulk data through the same store code the command API uses: domain decisions, unique
//! email reservations, per-user data keys, encrypted personal fields, one transaction per
//! batch. Only the password hash is computed once and shared (hashing is what makes signup
//! slow, and it is measured on its own).

use std::sync::Arc;

use anyhow::Context as _;
use api_common::error::ApiError;
use command_api::commands::reserve_email;
use command_api::pipeline::{Answer, Command, Decision, Request, execute, last_position};
use domain::user::SignUpUser;
use domain::values::{DisplayName, Email};
use domain::{Context, Plan, Tenant, TenantEvent, User, UserEvent};
use eventstore::{AppendedEvent, Changes, EventStore, Transaction};
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

/// What the generator's events name as their source.
const SOURCE: &str = "eventra-bench";

/// A tenant created through the store (for a database the API does not serve).
pub async fn tenant(store: &EventStore, name: &str) -> anyhow::Result<Uuid> {
    let tenant_id = Uuid::now_v7();
    run(
        store,
        &CreateTenant {
            tenant_id,
            name: name.to_owned(),
        },
    )
    .await?;
    Ok(tenant_id)
}

/// Runs a generator command through the command API's pipeline.
async fn run<C: Command>(store: &EventStore, command: &C) -> anyhow::Result<serde_json::Value> {
    let answer = execute(store, 0, &Request::tool(SOURCE), command)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    answer
        .body()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the generator's command was refused"))
}

/// A tenant without its admin (no decision creates one: the generator names it directly).
struct CreateTenant {
    tenant_id: Uuid,
    name: String,
}

impl Command for CreateTenant {
    type Unit = Transaction;
    type State = ();
    type Outcome = ();

    async fn load(&self, _: &Transaction) -> Result<(), ApiError> {
        Ok(())
    }

    fn decide(&self, _: &(), context: &Context) -> Result<Decision, ApiError> {
        let mut changes = Changes::new(self.tenant_id, context.now);
        changes.create::<Tenant>(
            self.tenant_id,
            vec![TenantEvent::Created {
                tenant_id: self.tenant_id,
                name: self.name.clone(),
                plan: Plan::Standard,
                admin_user_id: Uuid::now_v7(),
            }],
        );
        Ok(Decision::to_append(changes))
    }

    fn answer(&self, _: &(), _: (), _: &[AppendedEvent]) -> Result<Answer, ApiError> {
        Answer::ok(serde_json::json!({}))
    }
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
    let written = run(
        store,
        &SignUpBatch {
            tenant_id,
            numbers,
            updates,
            password_hash,
            emails: std::sync::Mutex::default(),
        },
    )
    .await?;
    Ok(Loaded {
        events: written["events"].as_u64().unwrap_or_default(),
        last_position: written["last_position"].as_i64().unwrap_or_default(),
    })
}

/// A batch of users signing up in one transaction, each with its email reserved and
/// `updates` profile updates after the signup.
struct SignUpBatch<'a> {
    tenant_id: Uuid,
    numbers: std::ops::Range<u64>,
    updates: u32,
    password_hash: &'a str,
    /// The emails the decision gave each user, reserved beside the events.
    emails: std::sync::Mutex<Vec<(Uuid, Email)>>,
}

impl Command for SignUpBatch<'_> {
    type Unit = Transaction;
    type State = Tenant;
    type Outcome = ();

    async fn load(&self, _: &Transaction) -> Result<Tenant, ApiError> {
        Ok(Tenant {
            tenant_id: Some(self.tenant_id),
            ..Default::default()
        })
    }

    fn decide(&self, tenant: &Tenant, context: &Context) -> Result<Decision, ApiError> {
        let tenant_id = self.tenant_id;
        let mut changes = Changes::new(tenant_id, context.now);
        let mut emails = Vec::new();
        for n in self.numbers.clone() {
            let user_id = Uuid::now_v7();
            let email = Email::parse(&format!(
                "bench-{n}-{}@bench.example.com",
                tenant_id.simple()
            ))?;
            let mut events = domain::user::sign_up(
                tenant,
                &domain::User::default(),
                SignUpUser {
                    user_id,
                    tenant_id,
                    email: email.clone(),
                    display_name: DisplayName::parse(&display_name(n))?,
                    password_hash: self.password_hash.to_owned(),
                },
                context,
            )?;
            for update in 0..self.updates {
                events.extend(UserEvent::profile_updated(
                    user_id,
                    Some(format!("{} v{update}", display_name(n))),
                    None,
                    Some(if update % 2 == 0 {
                        "en".into()
                    } else {
                        "de".into()
                    }),
                    user_id,
                ));
            }
            changes.create::<User>(user_id, events);
            emails.push((user_id, email));
        }
        *self
            .emails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = emails;
        Ok(Decision::to_append(changes))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &Tenant,
        _: &Context,
        _: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let emails = std::mem::take(
            &mut *self
                .emails
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (user_id, email) in emails {
            reserve_email(transaction, self.tenant_id, &email, user_id).await?;
        }
        Ok(())
    }

    fn answer(&self, _: &Tenant, _: (), appended: &[AppendedEvent]) -> Result<Answer, ApiError> {
        Answer::ok(serde_json::json!({
            "events": appended.len(),
            "last_position": last_position(appended, 0),
        }))
    }
}
