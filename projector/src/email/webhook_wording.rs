//! The words of the email each admin of a tenant gets when the system turns off one of the
//! tenant's webhooks because its endpoint kept failing. English and German.

use infra::email_jobs::Template;
use serde_json::Value;

use super::templates::Language;

/// The subject and paragraphs of a webhook email; `None` for any other template.
pub fn wording(
    template: Template,
    language: Language,
    tenant: &str,
    variables: &Value,
) -> Option<(String, Vec<String>)> {
    if template != Template::WebhookDisabled {
        return None;
    }
    let detail = |key: &str| variables[key].as_str().unwrap_or("").to_owned();
    let (url, since, error) = (
        detail("webhook_url"),
        detail("failing_since"),
        detail("last_error"),
    );
    Some(match language {
        Language::English => (
            format!("A webhook of {tenant} was turned off"),
            vec![
                format!(
                    "the webhook to {url} has failed every delivery attempt since {since} (UTC) — the last one: {error} — so it was turned off. Its events are kept and wait for it."
                ),
                "Fix the endpoint, then turn the webhook on again (PATCH the webhook with {\"enabled\": true}); the waiting events are then delivered in order. Its deliveries, with the reason of each failure, are listed by the query API.".to_owned(),
            ],
        ),
        Language::German => (
            format!("Ein Webhook von {tenant} wurde abgeschaltet"),
            vec![
                format!(
                    "der Webhook an {url} ist seit {since} (UTC) bei jedem Zustellversuch gescheitert — zuletzt: {error} — und wurde deshalb abgeschaltet. Seine Ereignisse bleiben erhalten und warten auf ihn."
                ),
                "Beheben Sie den Fehler am Empfänger und schalten Sie den Webhook wieder ein (PATCH des Webhooks mit {\"enabled\": true}); die wartenden Ereignisse werden dann der Reihe nach zugestellt. Seine Zustellungen, mit dem Grund jedes Fehlschlags, listet die Query-API.".to_owned(),
            ],
        ),
    })
}
