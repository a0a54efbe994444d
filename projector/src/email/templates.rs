//! The emails' words: a subject, a text body and an HTML body for each template, in English
//! (the default) and German, filled from the job's variables (`display_name`,
//! `tenant_name`, `locale` and the template's details). Values are escaped in HTML.

use infra::email_jobs::Template;
use serde_json::Value;

use super::foreign_text;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The languages with their own wording; any other locale reads English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    German,
}

impl Language {
    /// `de`, `de-AT`, `de_CH` … read German; everything else English.
    pub fn of(locale: Option<&str>) -> Self {
        match locale.map(|l| l.get(..2).unwrap_or(l).to_ascii_lowercase()) {
            Some(prefix) if prefix == "de" => Language::German,
            _ => Language::English,
        }
    }
}

pub fn render(template: Template, variables: &Value) -> Rendered {
    let language = Language::of(variables["locale"].as_str());
    let variables = &foreign_text::tamed(variables, language);
    let text_of = |key: &str| variables[key].as_str().unwrap_or_default().to_owned();
    let name = non_empty(text_of("display_name"), "there", "zusammen", language);
    let tenant = non_empty(text_of("tenant_name"), "Eventra", "Eventra", language);
    let (subject, lines) = wording(template, language, &tenant, variables);
    let greeting = match language {
        Language::English => format!("Hello {name},"),
        Language::German => format!("Hallo {name},"),
    };
    let mut closing = super::combined_wording::paragraphs(language, &variables["combined"]);
    if template.is_security_alert() && template != Template::AccountDeleted {
        closing.push(match language {
            Language::English => format!(
                "If you did not expect this, contact an administrator of {tenant} right away."
            ),
            Language::German => format!(
                "Falls Sie das nicht erwartet haben, wenden Sie sich sofort an eine Administratorin oder einen Administrator von {tenant}."
            ),
        });
    }
    let signature = match language {
        Language::English => format!("— {tenant}"),
        Language::German => format!("— {tenant}"),
    };
    let paragraphs: Vec<&String> = std::iter::once(&greeting)
        .chain(lines.iter())
        .chain(closing.iter())
        .chain(std::iter::once(&signature))
        .collect();
    let text = paragraphs
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n";
    let lang = match language {
        Language::English => "en",
        Language::German => "de",
    };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n{}\n</body></html>\n",
        escape(&subject),
        paragraphs
            .iter()
            .map(|p| format!("<p>{}</p>", escape(p)))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Rendered {
        subject,
        text,
        html,
    }
}

fn non_empty(value: String, english: &str, german: &str, language: Language) -> String {
    if value.trim().is_empty() {
        match language {
            Language::English => english.to_owned(),
            Language::German => german.to_owned(),
        }
    } else {
        value
    }
}

fn wording(
    template: Template,
    language: Language,
    tenant: &str,
    variables: &Value,
) -> (String, Vec<String>) {
    let detail = |key: &str| variables[key].as_str().unwrap_or("unknown").to_owned();
    let fields = variables["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(Value::as_str)
                .map(|f| field_name(f, language))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let english = language == Language::English;
    if let Some(words) = super::link_wording::wording(template, language, tenant, variables) {
        return words;
    }
    if let Some(words) = super::membership_wording::wording(template, language, tenant, variables) {
        return words;
    }
    if let Some(words) = super::webhook_wording::wording(template, language, tenant, variables) {
        return words;
    }
    let (subject, lines): (String, Vec<String>) = match template {
        Template::Welcome if english => (
            format!("Welcome to {tenant}"),
            vec![format!(
                "your account at {tenant} is ready. Sign in with this email address and the password you chose."
            )],
        ),
        Template::Welcome => (
            format!("Willkommen bei {tenant}"),
            vec![format!(
                "Ihr Konto bei {tenant} ist eingerichtet. Melden Sie sich mit dieser E-Mail-Adresse und Ihrem Passwort an."
            )],
        ),
        Template::MemberJoined if english => (
            format!("You joined {tenant}"),
            vec![format!(
                "you are now a member of {tenant} with the role {}.",
                detail("role")
            )],
        ),
        Template::MemberJoined => (
            format!("Sie sind {tenant} beigetreten"),
            vec![format!(
                "Sie sind jetzt Mitglied von {tenant} mit der Rolle {}.",
                detail("role")
            )],
        ),
        Template::ProfileUpdated if english => (
            "Your profile was updated".to_owned(),
            vec![format!("your profile at {tenant} was updated ({fields}).")],
        ),
        Template::ProfileUpdated => (
            "Ihr Profil wurde geändert".to_owned(),
            vec![format!(
                "Ihr Profil bei {tenant} wurde geändert ({fields})."
            )],
        ),
        Template::Deactivated if english => (
            "Your account was deactivated".to_owned(),
            vec![format!(
                "as you asked, your account at {tenant} is deactivated. You can no longer sign in; an administrator can reactivate it."
            )],
        ),
        Template::Deactivated => (
            "Ihr Konto wurde deaktiviert".to_owned(),
            vec![format!(
                "wie gewünscht ist Ihr Konto bei {tenant} deaktiviert. Sie können sich nicht mehr anmelden; eine Administratorin oder ein Administrator kann es wieder aktivieren."
            )],
        ),
        Template::DeactivatedByAdmin if english => (
            "Security alert: your account was deactivated".to_owned(),
            vec![format!(
                "an administrator of {tenant} deactivated your account. You can no longer sign in, and every session you had has ended."
            )],
        ),
        Template::DeactivatedByAdmin => (
            "Sicherheitshinweis: Ihr Konto wurde deaktiviert".to_owned(),
            vec![format!(
                "eine Administratorin oder ein Administrator von {tenant} hat Ihr Konto deaktiviert. Sie können sich nicht mehr anmelden, und alle Ihre Sitzungen wurden beendet."
            )],
        ),
        Template::Reactivated if english => (
            "Welcome back: your account is active again".to_owned(),
            vec![format!(
                "your account at {tenant} was reactivated. You can sign in again."
            )],
        ),
        Template::Reactivated => (
            "Willkommen zurück: Ihr Konto ist wieder aktiv".to_owned(),
            vec![format!(
                "Ihr Konto bei {tenant} wurde wieder aktiviert. Sie können sich wieder anmelden."
            )],
        ),
        Template::RoleChanged if english => (
            "Security alert: your role changed".to_owned(),
            vec![format!(
                "your role at {tenant} changed from {} to {}.",
                detail("old_role"),
                detail("new_role")
            )],
        ),
        Template::RoleChanged => (
            "Sicherheitshinweis: Ihre Rolle wurde geändert".to_owned(),
            vec![format!(
                "Ihre Rolle bei {tenant} wurde von {} zu {} geändert.",
                detail("old_role"),
                detail("new_role")
            )],
        ),
        Template::SessionEnded if english => (
            "You signed out".to_owned(),
            vec![format!(
                "your session {} at {tenant} has ended.",
                detail("session_id")
            )],
        ),
        Template::SessionEnded => (
            "Sie haben sich abgemeldet".to_owned(),
            vec![format!(
                "Ihre Sitzung {} bei {tenant} wurde beendet.",
                detail("session_id")
            )],
        ),
        Template::SessionRevoked if english => (
            "Security alert: a session was revoked".to_owned(),
            vec![match variables["reason"].as_str() {
                Some("refresh_token_reused") => format!(
                    "a refresh token of your session {} at {tenant} was used twice, which happens when a token is stolen. The session has ended; sign in again.",
                    detail("session_id")
                ),
                _ => format!(
                    "an administrator of {tenant} ended your session {}.",
                    detail("session_id")
                ),
            }],
        ),
        Template::SessionRevoked => (
            "Sicherheitshinweis: eine Sitzung wurde beendet".to_owned(),
            vec![match variables["reason"].as_str() {
                Some("refresh_token_reused") => format!(
                    "ein Aktualisierungstoken Ihrer Sitzung {} bei {tenant} wurde zweimal verwendet; das geschieht, wenn ein Token gestohlen wurde. Die Sitzung wurde beendet; bitte melden Sie sich neu an.",
                    detail("session_id")
                ),
                _ => format!(
                    "eine Administratorin oder ein Administrator von {tenant} hat Ihre Sitzung {} beendet.",
                    detail("session_id")
                ),
            }],
        ),
        Template::AccountDeleted if english => (
            "Your account was deleted".to_owned(),
            vec![format!(
                "your account at {tenant} and your personal data were deleted. This is the last email we send to this address; we no longer hold it."
            )],
        ),
        Template::MemberRemoved if english => (
            format!("Security alert: you were removed from {tenant}"),
            vec![format!(
                "an administrator of {tenant} removed you from the organisation. Every session you had has ended and you can no longer sign in. If you did not expect this, contact an administrator of {tenant}."
            )],
        ),
        Template::MemberRemoved => (
            format!("Sicherheitshinweis: Sie wurden aus {tenant} entfernt"),
            vec![format!(
                "eine Administratorin oder ein Administrator von {tenant} hat Sie aus der Organisation entfernt. Alle Ihre Sitzungen wurden beendet, und Sie können sich nicht mehr anmelden. Falls Sie das nicht erwartet haben, wenden Sie sich an die Verwaltung von {tenant}."
            )],
        ),
        Template::LeftTenant if english => (
            format!("You left {tenant}"),
            vec![format!(
                "as you asked, you are no longer a member of {tenant}. Every session you had has ended. Goodbye, and thank you."
            )],
        ),
        Template::LeftTenant => (
            format!("Sie haben {tenant} verlassen"),
            vec![format!(
                "wie gewünscht sind Sie nicht mehr Mitglied von {tenant}. Alle Ihre Sitzungen wurden beendet. Auf Wiedersehen und vielen Dank."
            )],
        ),
        Template::AccountDeleted => (
            "Ihr Konto wurde gelöscht".to_owned(),
            vec![format!(
                "Ihr Konto bei {tenant} und Ihre persönlichen Daten wurden gelöscht. Dies ist die letzte E-Mail an diese Adresse; wir speichern sie nicht mehr."
            )],
        ),
        // Worded in `membership_wording`, which answered above.
        Template::Invitation
        | Template::InvitationAccepted
        | Template::InvitationExpired
        | Template::TeamWelcome
        | Template::DeletionScheduled
        | Template::DeletionCancelled
        | Template::PasswordChanged
        | Template::OtherSessionsEnded
        | Template::AccountLocked
        | Template::PasswordReset
        | Template::EmailChange
        | Template::EmailChanged
        | Template::WebhookDisabled => (String::new(), Vec::new()),
    };
    (subject, lines)
}

fn field_name(field: &str, language: Language) -> String {
    match (field, language) {
        ("display_name", Language::English) => "display name",
        ("display_name", Language::German) => "Anzeigename",
        ("phone", Language::English) => "phone number",
        ("phone", Language::German) => "Telefonnummer",
        ("locale", Language::English) => "language",
        ("locale", Language::German) => "Sprache",
        (other, _) => other,
    }
    .to_owned()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_renders_in_every_language_with_the_names() {
        for template in Template::ALL {
            for locale in [None, Some("en"), Some("de-AT"), Some("fr")] {
                let rendered = render(
                    template,
                    &json!({"display_name": "Ada", "tenant_name": "Acme", "locale": locale,
                            "fields": ["phone"], "role": "member", "old_role": "member",
                            "new_role": "admin", "session_id": "s-1"}),
                );
                assert!(!rendered.subject.is_empty());
                assert!(rendered.text.contains("Ada"), "{template:?} {locale:?}");
                assert!(rendered.text.contains("Acme"), "{template:?} {locale:?}");
                assert!(rendered.html.contains("<p>"), "{template:?}");
            }
        }
    }

    /// Words that only one of the two languages uses.
    const ENGLISH_WORDS: &[&str] = &[
        "you", "your", "the", "was", "were", "has", "and", "with", "is", "to", "welcome", "hello",
        "alert",
    ];
    const GERMAN_WORDS: &[&str] = &[
        "sie",
        "ihr",
        "ihre",
        "ihrem",
        "wurde",
        "wurden",
        "bei",
        "und",
        "ist",
        "nicht",
        "hallo",
        "willkommen",
        "eine",
    ];

    fn words_of<'a>(text: &'a str, vocabulary: &[&str]) -> Vec<&'a str> {
        text.split(|c: char| !c.is_alphabetic())
            .filter(|word| vocabulary.contains(&word.to_lowercase().as_str()))
            .collect()
    }

    #[test]
    fn every_template_in_every_locale_speaks_that_language_only() {
        for template in Template::ALL {
            for (locale, german) in [
                (None, false),
                (Some("en"), false),
                (Some("en-GB"), false),
                (Some("fr"), false),
                (Some("de"), true),
                (Some("de-AT"), true),
                (Some("de_CH"), true),
            ] {
                for reason in ["revoked_by_admin", "refresh_token_reused"] {
                    let rendered = render(
                        template,
                        &json!({"display_name": "Ada", "tenant_name": "Acme", "locale": locale,
                                "fields": ["display_name", "phone", "locale"], "role": "member",
                                "old_role": "member", "new_role": "admin", "session_id": "s-1",
                                "reason": reason, "combined": {"count": 3, "organisations": ["Acme"],
                                "kinds": [{"template": "account_locked", "count": 3}]}}),
                    );
                    let (own, other) = if german {
                        (GERMAN_WORDS, ENGLISH_WORDS)
                    } else {
                        (ENGLISH_WORDS, GERMAN_WORDS)
                    };
                    for (part, text) in [("subject", &rendered.subject), ("text", &rendered.text)] {
                        assert!(
                            !words_of(text, own).is_empty(),
                            "{template:?} {locale:?} {part} is not in its language: {text}"
                        );
                        assert_eq!(
                            words_of(text, other),
                            Vec::<&str>::new(),
                            "{template:?} {locale:?} {part} mixes languages: {text}"
                        );
                    }
                    assert!(
                        rendered
                            .html
                            .contains(if german { "lang=\"de\"" } else { "lang=\"en\"" }),
                        "{template:?} {locale:?}"
                    );
                }
            }
            // The two languages say it differently, subject and body alike.
            let english = render(template, &json!({"locale": "en"}));
            let german = render(template, &json!({"locale": "de"}));
            assert_ne!(english.subject, german.subject, "{template:?}");
            assert_ne!(english.text, german.text, "{template:?}");
        }
    }

    #[test]
    fn a_profile_notice_names_the_changed_fields_in_its_language() {
        let fields = json!(["display_name", "phone", "locale", "something_else"]);
        let english = render(Template::ProfileUpdated, &json!({"fields": fields}));
        assert!(
            english
                .text
                .contains("(display name, phone number, language, something_else)"),
            "{}",
            english.text
        );
        let german = render(
            Template::ProfileUpdated,
            &json!({"fields": fields, "locale": "de"}),
        );
        assert!(
            german
                .text
                .contains("(Anzeigename, Telefonnummer, Sprache, something_else)"),
            "{}",
            german.text
        );
    }

    #[test]
    fn german_locales_read_german_and_others_english() {
        let vars =
            |locale: &str| json!({"display_name": "Ada", "tenant_name": "Acme", "locale": locale});
        assert!(
            render(Template::Welcome, &vars("de"))
                .subject
                .starts_with("Willkommen")
        );
        assert!(
            render(Template::Welcome, &vars("de_CH"))
                .subject
                .starts_with("Willkommen")
        );
        assert!(
            render(Template::Welcome, &vars("fr-FR"))
                .subject
                .starts_with("Welcome")
        );
        assert!(
            render(Template::Welcome, &json!({}))
                .text
                .starts_with("Hello there,")
        );
    }

    #[test]
    fn names_are_escaped_in_html_but_not_in_text() {
        let rendered = render(
            Template::Welcome,
            &json!({"display_name": "<script>alert(1)</script>", "tenant_name": "A & B"}),
        );
        assert!(rendered.text.contains("<script>"));
        assert!(!rendered.html.contains("<script>"));
        assert!(rendered.html.contains("&lt;script&gt;"));
        assert!(rendered.html.contains("A &amp; B"));
    }

    #[test]
    fn security_alerts_say_what_to_do() {
        let vars = json!({"display_name": "Ada", "tenant_name": "Acme"});
        assert!(
            render(Template::RoleChanged, &vars)
                .text
                .contains("contact an administrator")
        );
        assert!(
            !render(Template::Welcome, &vars)
                .text
                .contains("contact an administrator")
        );
    }
}
