//! The words of the membership and account emails: the invitation with its one-time link,
//! the inviter's notices (accepted, expired), the welcome to a team, and a deletion
//! scheduled or cancelled. English and German.

use infra::email_jobs::Template;
use serde_json::Value;

use super::templates::Language;

/// The subject and paragraphs of a membership email; `None` for any other template.
pub fn wording(
    template: Template,
    language: Language,
    tenant: &str,
    variables: &Value,
) -> Option<(String, Vec<String>)> {
    let detail = |key: &str| variables[key].as_str().unwrap_or("").to_owned();
    let or = |key: &str, fallback: &str| {
        let value = detail(key);
        if value.trim().is_empty() {
            fallback.to_owned()
        } else {
            value
        }
    };
    let english = language == Language::English;
    let imported = variables["imported"].as_bool() == Some(true);
    Some(match template {
        Template::Invitation if imported && english => (
            format!("Your account at {tenant} is ready: set your password"),
            vec![
                format!(
                    "{} created an account for you at {tenant}. Choose your password here: {}",
                    or("inviter_name", "An administrator"),
                    detail("link")
                ),
                format!(
                    "The link works once and expires at {} (UTC). If you did not expect this, ignore this email.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::Invitation if imported => (
            format!("Ihr Konto bei {tenant} ist bereit: Passwort festlegen"),
            vec![
                format!(
                    "{} hat für Sie ein Konto bei {tenant} angelegt. Wählen Sie hier Ihr Passwort: {}",
                    or(
                        "inviter_name",
                        "Eine Administratorin oder ein Administrator"
                    ),
                    detail("link")
                ),
                format!(
                    "Der Link funktioniert einmal und läuft am {} (UTC) ab. Falls Sie das nicht erwartet haben, ignorieren Sie diese E-Mail.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::Invitation if english => (
            format!("You are invited to {tenant}"),
            vec![
                format!(
                    "{} invites you to join {tenant} as {}.",
                    or("inviter_name", "An administrator"),
                    role_name(&detail("role"), language)
                ),
                format!("Accept the invitation here: {}", detail("link")),
                format!(
                    "The link works once and expires at {} (UTC). If you did not expect this invitation, ignore this email.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::Invitation => (
            format!("Sie sind zu {tenant} eingeladen"),
            vec![
                format!(
                    "{} lädt Sie ein, {tenant} als {} beizutreten.",
                    or(
                        "inviter_name",
                        "Eine Administratorin oder ein Administrator"
                    ),
                    role_name(&detail("role"), language)
                ),
                format!("Nehmen Sie die Einladung hier an: {}", detail("link")),
                format!(
                    "Der Link funktioniert einmal und läuft am {} (UTC) ab. Falls Sie diese Einladung nicht erwartet haben, ignorieren Sie diese E-Mail.",
                    detail("expires_at")
                ),
            ],
        ),
        Template::InvitationAccepted if english => (
            "Your invitation was accepted".to_owned(),
            vec![format!(
                "{} accepted your invitation and is now a member of {tenant}.",
                or("member_name", "The person you invited")
            )],
        ),
        Template::InvitationAccepted => (
            "Ihre Einladung wurde angenommen".to_owned(),
            vec![format!(
                "{} hat Ihre Einladung angenommen und ist jetzt Mitglied von {tenant}.",
                or("member_name", "Die eingeladene Person")
            )],
        ),
        Template::InvitationExpired if english => (
            "Your invitation expired".to_owned(),
            vec![format!(
                "an invitation you sent to join {tenant} expired at {} (UTC) without being accepted. You can invite the address again.",
                detail("expires_at")
            )],
        ),
        Template::InvitationExpired => (
            "Ihre Einladung ist abgelaufen".to_owned(),
            vec![format!(
                "eine Einladung zu {tenant}, die Sie verschickt haben, ist am {} (UTC) abgelaufen, ohne angenommen zu werden. Sie können die Adresse erneut einladen.",
                detail("expires_at")
            )],
        ),
        Template::TeamWelcome if english => (
            format!("You joined the team {}", or("team_name", "of your tenant")),
            vec![format!(
                "you are now a member of the team {} at {tenant}.",
                or("team_name", "")
            )],
        ),
        Template::TeamWelcome => (
            format!("Sie sind jetzt im Team {}", or("team_name", "")),
            vec![format!(
                "Sie sind jetzt Mitglied des Teams {} bei {tenant}.",
                or("team_name", "")
            )],
        ),
        Template::DeletionScheduled if english => (
            "Security alert: your account will be deleted".to_owned(),
            vec![
                if variables["by_self"].as_bool() == Some(true) {
                    format!(
                        "as you asked, your account at {tenant} is closed and will be deleted for good."
                    )
                } else {
                    format!(
                        "an administrator of {tenant} closed your account; it will be deleted for good."
                    )
                },
                format!(
                    "Your account and your personal data will be deleted at {} (UTC). Until then an administrator of {tenant} can restore it; you cannot sign in meanwhile.",
                    detail("purge_at")
                ),
            ],
        ),
        Template::DeletionScheduled => (
            "Sicherheitshinweis: Ihr Konto wird gelöscht".to_owned(),
            vec![
                if variables["by_self"].as_bool() == Some(true) {
                    format!(
                        "wie gewünscht ist Ihr Konto bei {tenant} geschlossen und wird endgültig gelöscht."
                    )
                } else {
                    format!(
                        "eine Administratorin oder ein Administrator von {tenant} hat Ihr Konto geschlossen; es wird endgültig gelöscht."
                    )
                },
                format!(
                    "Ihr Konto und Ihre persönlichen Daten werden am {} (UTC) gelöscht. Bis dahin kann die Verwaltung von {tenant} es wiederherstellen; anmelden können Sie sich solange nicht.",
                    detail("purge_at")
                ),
            ],
        ),
        Template::DeletionCancelled if english => (
            "Your account was restored".to_owned(),
            vec![format!(
                "an administrator of {tenant} restored your account: it will not be deleted. Sign in again as before."
            )],
        ),
        Template::DeletionCancelled => (
            "Ihr Konto wurde wiederhergestellt".to_owned(),
            vec![format!(
                "eine Administratorin oder ein Administrator von {tenant} hat Ihr Konto wiederhergestellt: es wird nicht gelöscht. Melden Sie sich wieder wie gewohnt an."
            )],
        ),
        Template::PasswordChanged if english => (
            "Security alert: your password was changed".to_owned(),
            vec![format!(
                "the password of your account at {tenant} was changed, and every other session you had has ended."
            )],
        ),
        Template::PasswordChanged => (
            "Sicherheitshinweis: Ihr Passwort wurde geändert".to_owned(),
            vec![format!(
                "das Passwort Ihres Kontos bei {tenant} wurde geändert, und alle Ihre anderen Sitzungen wurden beendet."
            )],
        ),
        Template::OtherSessionsEnded if english => (
            "Security alert: your other sessions were ended".to_owned(),
            vec![format!(
                "you ended {} other session(s) of your account at {tenant}. Only the one you used for it is still signed in.",
                detail("count")
            )],
        ),
        Template::OtherSessionsEnded => (
            "Sicherheitshinweis: Ihre anderen Sitzungen wurden beendet".to_owned(),
            vec![format!(
                "Sie haben {} andere Sitzung(en) Ihres Kontos bei {tenant} beendet. Nur die, mit der Sie das getan haben, ist noch angemeldet.",
                detail("count")
            )],
        ),
        Template::AccountLocked if english => (
            "Security alert: your account was locked".to_owned(),
            vec![format!(
                "after {} wrong passwords, signing in to your account at {tenant} is blocked until {} (UTC). If it was not you, someone is guessing your password: choose a stronger one once you can sign in again.",
                or("failures", "several"),
                detail("until")
            )],
        ),
        Template::AccountLocked => (
            "Sicherheitshinweis: Ihr Konto wurde gesperrt".to_owned(),
            vec![format!(
                "nach {} falschen Passwörtern ist die Anmeldung bei Ihrem Konto bei {tenant} bis {} (UTC) gesperrt. Falls Sie das nicht waren, versucht jemand Ihr Passwort zu erraten: wählen Sie ein stärkeres, sobald Sie sich wieder anmelden können.",
                or("failures", "mehreren"),
                detail("until")
            )],
        ),
        _ => return None,
    })
}

fn role_name(role: &str, language: Language) -> &'static str {
    match (role, language) {
        ("admin", Language::English) => "an administrator",
        ("admin", Language::German) => "Administrator/in",
        (_, Language::English) => "a member",
        (_, Language::German) => "Mitglied",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::email::templates::render;

    #[test]
    fn the_invitation_carries_its_link_expiry_inviter_and_role_in_both_languages() {
        for (locale, accept) in [("en", "Accept the invitation"), ("de", "Nehmen Sie")] {
            let rendered = render(
                Template::Invitation,
                &json!({"tenant_name": "Hotel Astoria", "inviter_name": "Grete", "role": "admin",
                        "expires_at": "2026-12-12 10:00", "locale": locale,
                        "link": "https://eventra.example/invitations/accept?token=abc"}),
            );
            assert!(
                rendered.text.contains(accept),
                "{locale}: {}",
                rendered.text
            );
            assert!(
                rendered
                    .text
                    .contains("https://eventra.example/invitations/accept?token=abc")
            );
            assert!(rendered.text.contains("2026-12-12 10:00"));
            assert!(rendered.text.contains("Grete"));
            assert!(rendered.subject.contains("Hotel Astoria"));
            assert!(rendered.html.contains("token=abc"));
        }
    }

    #[test]
    fn the_inviters_notices_and_the_team_welcome_have_words_in_both_languages() {
        for template in [
            Template::InvitationAccepted,
            Template::InvitationExpired,
            Template::TeamWelcome,
        ] {
            for language in [Language::English, Language::German] {
                let (subject, lines) = wording(
                    template,
                    language,
                    "Acme",
                    &json!({"member_name": "Ada", "team_name": "Night shift", "expires_at": "soon"}),
                )
                .expect("a membership template");
                assert!(!subject.is_empty() && !lines.is_empty());
            }
        }
        assert!(wording(Template::Welcome, Language::English, "Acme", &json!({})).is_none());
    }
}
