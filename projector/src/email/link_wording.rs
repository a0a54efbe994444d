//! The words of the emails about the account's password and address: the password reset
//! link, the welcome with the link that confirms the address, the link to a new address, and
//! the notice to the old address after a move. English and German.

use infra::email_jobs::Template;
use serde_json::Value;

use super::templates::Language;

/// The subject and paragraphs of a link email; `None` for any other template.
pub fn wording(
    template: Template,
    language: Language,
    tenant: &str,
    variables: &Value,
) -> Option<(String, Vec<String>)> {
    let detail = |key: &str| variables[key].as_str().unwrap_or("").to_owned();
    let english = language == Language::English;
    let has_link = !detail("link").is_empty();
    Some(match template {
        Template::PasswordReset if english => (
            format!("Reset your password at {tenant}"),
            vec![
                format!(
                    "someone asked to reset the password of your account at {tenant}. Choose a new password here: {}",
                    detail("link")
                ),
                format!(
                    "The link works once and expires at {} (UTC). Using it ends every session of your account. If you did not ask for it, ignore this email: your password stays as it is.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::PasswordReset => (
            format!("Passwort bei {tenant} zurücksetzen"),
            vec![
                format!(
                    "jemand hat angefordert, das Passwort Ihres Kontos bei {tenant} zurückzusetzen. Wählen Sie hier ein neues Passwort: {}",
                    detail("link")
                ),
                format!(
                    "Der Link funktioniert einmal und läuft am {} (UTC) ab. Wenn Sie ihn verwenden, werden alle Sitzungen Ihres Kontos beendet. Falls Sie das nicht angefordert haben, ignorieren Sie diese E-Mail: Ihr Passwort bleibt unverändert.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::Welcome if has_link && english => (
            format!("Welcome to {tenant}"),
            vec![
                format!(
                    "your account at {tenant} is ready. Sign in with this email address and the password you chose."
                ),
                format!(
                    "Please confirm that this address is yours: {}",
                    detail("link")
                ),
                format!(
                    "The link works once and expires at {} (UTC). If you did not sign up, ignore this email.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::Welcome if has_link => (
            format!("Willkommen bei {tenant}"),
            vec![
                format!(
                    "Ihr Konto bei {tenant} ist eingerichtet. Melden Sie sich mit dieser E-Mail-Adresse und Ihrem Passwort an."
                ),
                format!(
                    "Bitte bestätigen Sie, dass diese Adresse Ihnen gehört: {}",
                    detail("link")
                ),
                format!(
                    "Der Link funktioniert einmal und läuft am {} (UTC) ab. Falls Sie sich nicht registriert haben, ignorieren Sie diese E-Mail.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::EmailChange if english => (
            format!("Confirm your new email address for {tenant}"),
            vec![
                format!(
                    "your account at {tenant} asked to use this address from now on. Confirm it here: {}",
                    detail("link")
                ),
                format!(
                    "Until you do, the account keeps its current address. The link works once and expires at {} (UTC). If you did not ask for this, ignore this email.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::EmailChange => (
            format!("Bestätigen Sie Ihre neue E-Mail-Adresse für {tenant}"),
            vec![
                format!(
                    "Ihr Konto bei {tenant} soll ab jetzt diese Adresse verwenden. Bestätigen Sie sie hier: {}",
                    detail("link")
                ),
                format!(
                    "Bis dahin behält das Konto seine bisherige Adresse. Der Link funktioniert einmal und läuft am {} (UTC) ab. Falls Sie das nicht angefordert haben, ignorieren Sie diese E-Mail.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::EmailChanged if english => (
            "Security alert: your email address was changed".to_owned(),
            vec![format!(
                "your account at {tenant} now uses another email address; this address no longer signs in to it and gets no more emails about it."
            )],
        ),
        Template::EmailChanged => (
            "Sicherheitshinweis: Ihre E-Mail-Adresse wurde geändert".to_owned(),
            vec![format!(
                "Ihr Konto bei {tenant} verwendet jetzt eine andere E-Mail-Adresse; mit dieser Adresse können Sie sich dort nicht mehr anmelden, und sie erhält keine E-Mails mehr dazu."
            )],
        ),
        Template::PasswordChanged if variables["reset"].as_bool() == Some(true) && english => (
            "Security alert: your password was reset".to_owned(),
            vec![format!(
                "the password of your account at {tenant} was reset with a link sent to this address, and every session of the account has ended."
            )],
        ),
        Template::PasswordChanged if variables["reset"].as_bool() == Some(true) => (
            "Sicherheitshinweis: Ihr Passwort wurde zurückgesetzt".to_owned(),
            vec![format!(
                "das Passwort Ihres Kontos bei {tenant} wurde mit einem an diese Adresse gesendeten Link zurückgesetzt, und alle Sitzungen des Kontos wurden beendet."
            )],
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_link_email_carries_its_link_and_expiry_in_both_languages() {
        for template in [
            Template::PasswordReset,
            Template::Welcome,
            Template::EmailChange,
        ] {
            for language in [Language::English, Language::German] {
                let (subject, lines) = wording(
                    template,
                    language,
                    "Acme",
                    &json!({"link": "https://app.example/x?token=t", "expires_at": "2026-12-06 10:00"}),
                )
                .expect("worded");
                let text = lines.join("\n");
                assert!(subject.contains("Acme"), "{template:?}");
                assert!(!subject.is_empty());
                assert!(
                    text.contains("https://app.example/x?token=t"),
                    "{template:?}"
                );
                assert!(text.contains("2026-12-06 10:00"), "{template:?}");
            }
        }
    }

    #[test]
    fn a_reset_password_notice_says_it_was_reset() {
        let (subject, _) = wording(
            Template::PasswordChanged,
            Language::English,
            "Acme",
            &json!({"reset": true}),
        )
        .expect("worded");
        assert!(subject.contains("reset"));
        assert!(
            wording(
                Template::PasswordChanged,
                Language::English,
                "Acme",
                &json!({})
            )
            .is_none()
        );
    }
}
