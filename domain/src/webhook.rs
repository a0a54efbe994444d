//! The webhook aggregate: one HTTPS endpoint of a tenant that receives the tenant's events
//! of the types it names, signed with a secret only the tenant and the platform know
//! (ADR 0028). Whether an address may be called (no private network without the operator's
//! leave) is decided outside the domain, where names are resolved.

use uuid::Uuid;

use crate::event::WebhookEvent;
use crate::{Actor, Context, DomainError, Role};

/// The most event types one webhook names.
pub const MAX_EVENT_TYPES: usize = 100;
/// The longest URL a webhook may have.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The event type filter that matches every type.
pub const ALL_TYPES: &str = "*";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Webhook {
    pub webhook_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub secret_version: u32,
    pub deleted: bool,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

impl Webhook {
    /// Created, not deleted.
    pub fn exists(&self) -> bool {
        self.webhook_id.is_some() && !self.deleted
    }

    pub fn apply(&mut self, event: &WebhookEvent) {
        match event {
            WebhookEvent::Created {
                webhook_id,
                tenant_id,
                url,
                event_types,
                secret_version,
                ..
            } => {
                self.webhook_id = Some(*webhook_id);
                self.tenant_id = Some(*tenant_id);
                self.url.clone_from(url);
                self.event_types.clone_from(event_types);
                self.secret_version = *secret_version;
                self.enabled = true;
            }
            WebhookEvent::Updated {
                url,
                event_types,
                enabled,
                ..
            } => {
                if let Some(url) = url {
                    self.url.clone_from(url);
                }
                if let Some(event_types) = event_types {
                    self.event_types.clone_from(event_types);
                }
                if let Some(enabled) = enabled {
                    self.enabled = *enabled;
                }
            }
            WebhookEvent::SecretRotated { secret_version, .. } => {
                self.secret_version = *secret_version;
            }
            WebhookEvent::Disabled { .. } => self.enabled = false,
            WebhookEvent::Deleted { .. } => self.deleted = true,
        }
        self.version += 1;
    }

    /// Whether an event of `event_type` goes to this webhook (when it is enabled).
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && matches_types(&self.event_types, event_type)
    }
}

/// Whether a filter of event types takes `event_type`.
pub fn matches_types(event_types: &[String], event_type: &str) -> bool {
    event_types
        .iter()
        .any(|t| t == ALL_TYPES || t == event_type)
}

/// A webhook URL as far as the domain can judge it: `https://` (or `http://`, which only an
/// operator-allowed host may use), a host, no user or password, no fragment, at most
/// [`MAX_URL_LEN`] characters, nothing invisible.
pub fn parse_url(input: &str) -> Result<String, DomainError> {
    let url = input.trim();
    let invalid = |why: &str| Err(DomainError::Invalid(format!("url: {why}")));
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return invalid(&format!("must be 1 to {MAX_URL_LEN} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("must not contain spaces or control characters");
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return invalid("must be an https:// (or http://) URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return invalid("must name a host");
    }
    if authority.contains('@') {
        return invalid("must not carry a user or password");
    }
    if url.contains('#') {
        return invalid("must not have a fragment");
    }
    Ok(url.to_owned())
}

/// An event type filter: `["*"]`, or known types (checked by `known`), without repeats.
pub fn parse_event_types(
    input: &[String],
    known: impl Fn(&str) -> bool,
) -> Result<Vec<String>, DomainError> {
    if input.is_empty() || input.len() > MAX_EVENT_TYPES {
        return Err(DomainError::Invalid(format!(
            "event_types: must name 1 to {MAX_EVENT_TYPES} event types, or [\"*\"] for all"
        )));
    }
    let mut types: Vec<String> = Vec::with_capacity(input.len());
    for event_type in input {
        if event_type != ALL_TYPES && !known(event_type) {
            return Err(DomainError::Invalid(format!(
                "event_types: {event_type:?} is not an event type (see /v1/schemas/events)"
            )));
        }
        if !types.contains(event_type) {
            types.push(event_type.clone());
        }
    }
    Ok(types)
}

/// A new webhook, its parts already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateWebhook {
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

/// A change of a webhook; `None` keeps what is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// The tenant admin acting, or why not.
fn admin_of(tenant_id: Uuid, context: &Context) -> Result<Uuid, DomainError> {
    match context.actor {
        Actor::User {
            user_id,
            tenant_id: actor_tenant,
            role: Role::Admin,
        } if actor_tenant == tenant_id => Ok(user_id),
        _ => Err(DomainError::NotAllowed),
    }
}

fn existing(state: &Webhook) -> Result<(Uuid, Uuid), DomainError> {
    match (state.webhook_id, state.tenant_id) {
        (Some(webhook_id), Some(tenant_id)) if !state.deleted => Ok((webhook_id, tenant_id)),
        _ => Err(DomainError::WebhookNotFound),
    }
}

pub fn create(
    state: &Webhook,
    command: CreateWebhook,
    context: &Context,
) -> Result<Vec<WebhookEvent>, DomainError> {
    let admin = admin_of(command.tenant_id, context)?;
    if state.webhook_id.is_some() {
        return Err(DomainError::WebhookAlreadyExists);
    }
    if let Some(description) = &command.description
        && description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(DomainError::Invalid(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(vec![WebhookEvent::Created {
        webhook_id: command.webhook_id,
        tenant_id: command.tenant_id,
        url: command.url,
        event_types: command.event_types,
        description: command.description.filter(|d| !d.trim().is_empty()),
        secret_version: 1,
        created_by: admin,
    }])
}

pub fn update(
    state: &Webhook,
    changes: WebhookChanges,
    context: &Context,
) -> Result<Vec<WebhookEvent>, DomainError> {
    let (webhook_id, tenant_id) = existing(state)?;
    let admin = admin_of(tenant_id, context)?;
    let url = changes.url.filter(|url| *url != state.url);
    let event_types = changes.event_types.filter(|t| *t != state.event_types);
    let enabled = changes.enabled.filter(|e| *e != state.enabled);
    if url.is_none() && event_types.is_none() && enabled.is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![WebhookEvent::Updated {
        webhook_id,
        url,
        event_types,
        enabled,
        updated_by: admin,
    }])
}

pub fn rotate_secret(state: &Webhook, context: &Context) -> Result<Vec<WebhookEvent>, DomainError> {
    let (webhook_id, tenant_id) = existing(state)?;
    let admin = admin_of(tenant_id, context)?;
    Ok(vec![WebhookEvent::SecretRotated {
        webhook_id,
        secret_version: state.secret_version + 1,
        rotated_by: admin,
    }])
}

pub fn delete(state: &Webhook, context: &Context) -> Result<Vec<WebhookEvent>, DomainError> {
    let (webhook_id, tenant_id) = existing(state)?;
    let admin = admin_of(tenant_id, context)?;
    Ok(vec![WebhookEvent::Deleted {
        webhook_id,
        deleted_by: admin,
    }])
}

/// Why the system disables a webhook.
pub const DISABLED_FAILING: &str = "failing";

/// The system turns off a webhook whose endpoint has failed every attempt since
/// `failing_since`; nothing when it is already off or gone (another worker was first).
pub fn disable_failing(
    state: &Webhook,
    failing_since: chrono::DateTime<chrono::Utc>,
    last_error: &str,
) -> Vec<WebhookEvent> {
    match state.webhook_id {
        Some(webhook_id) if state.exists() && state.enabled => vec![WebhookEvent::Disabled {
            webhook_id,
            reason: DISABLED_FAILING.to_owned(),
            failing_since,
            last_error: last_error.chars().take(200).collect(),
        }],
        _ => Vec::new(),
    }
}
