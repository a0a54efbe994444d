//! The words of a security alert that carries others: when an inbox's alert budget is down
//! to its last email of the hour, that email also stands for every alert waiting for the
//! same inbox (ADR 0026), and says so: how many, of which kinds, from which organisations.

use infra::email_jobs::Template;
use serde_json::Value;

use super::foreign_text;
use super::templates::Language;

/// Organisations named one by one; the rest are counted.
pub const NAMED_ORGANISATIONS: usize = 10;

/// The paragraphs for the `combined` variable (`{count, since, kinds: [{template, count}],
/// organisations: [name], more_organisations}`); none when it is absent.
pub fn paragraphs(language: Language, combined: &Value) -> Vec<String> {
    let count = combined["count"].as_u64().unwrap_or(0);
    if count == 0 {
        return Vec::new();
    }
    let since = combined["since"].as_str().unwrap_or("?");
    let kinds = combined["kinds"]
        .as_array()
        .map(|kinds| {
            kinds
                .iter()
                .map(|kind| {
                    let template = kind["template"].as_str().and_then(Template::from_name);
                    format!(
                        "{} × {}",
                        label(template, language),
                        kind["count"].as_u64().unwrap_or(1)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let names: Vec<String> = combined["organisations"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .take(NAMED_ORGANISATIONS)
                .map(|name| foreign_text::quoted(name, language))
                .collect()
        })
        .unwrap_or_default();
    let more = combined["more_organisations"].as_u64().unwrap_or(0);
    let english = language == Language::English;
    let mut paragraphs = vec![if english {
        format!(
            "This email also stands for {count} more security alert(s) for this address since {since} (UTC), combined into one so that your inbox is not flooded: {kinds}."
        )
    } else {
        format!(
            "Diese E-Mail steht außerdem für {count} weitere Sicherheitshinweis(e) an diese Adresse seit {since} (UTC), zusammengefasst, damit Ihr Postfach nicht überläuft: {kinds}."
        )
    }];
    if !names.is_empty() {
        let list = names.join(", ");
        paragraphs.push(match (english, more) {
            (true, 0) => format!("They came from {list}."),
            (true, more) => format!("They came from {list} and {more} more organisation(s)."),
            (false, 0) => format!("Sie stammen von {list}."),
            (false, more) => {
                format!("Sie stammen von {list} und {more} weiteren Organisation(en).")
            }
        });
    }
    paragraphs.push(if english {
        "If you did not sign up at these organisations, someone is using your address: you can ignore this email, and ask each organisation to remove the account.".to_owned()
    } else {
        "Falls Sie sich bei diesen Organisationen nicht angemeldet haben, verwendet jemand Ihre Adresse: Sie können diese E-Mail ignorieren und die Organisationen bitten, das Konto zu entfernen.".to_owned()
    });
    paragraphs
}

/// A security alert's kind in a few words.
fn label(template: Option<Template>, language: Language) -> &'static str {
    let english = language == Language::English;
    match template {
        Some(Template::AccountLocked) if english => "sign-in blocked after wrong passwords",
        Some(Template::AccountLocked) => "Anmeldung nach falschen Passwörtern gesperrt",
        Some(Template::RoleChanged) if english => "role changed",
        Some(Template::RoleChanged) => "Rolle geändert",
        Some(Template::SessionRevoked) if english => "session ended",
        Some(Template::SessionRevoked) => "Sitzung beendet",
        Some(Template::OtherSessionsEnded) if english => "other sessions ended",
        Some(Template::OtherSessionsEnded) => "andere Sitzungen beendet",
        Some(Template::PasswordChanged) if english => "password changed",
        Some(Template::PasswordChanged) => "Passwort geändert",
        Some(Template::EmailChanged) if english => "address changed",
        Some(Template::EmailChanged) => "Adresse geändert",
        Some(Template::DeactivatedByAdmin) if english => "account deactivated",
        Some(Template::DeactivatedByAdmin) => "Konto deaktiviert",
        Some(Template::MemberRemoved) if english => "removed from an organisation",
        Some(Template::MemberRemoved) => "aus einer Organisation entfernt",
        Some(Template::DeletionScheduled) if english => "account closed for deletion",
        Some(Template::DeletionScheduled) => "Konto zur Löschung geschlossen",
        Some(Template::AccountDeleted) if english => "account deleted",
        Some(Template::AccountDeleted) => "Konto gelöscht",
        _ if english => "other",
        _ => "sonstige",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn combined() -> Value {
        json!({"count": 14, "since": "2026-12-06 08:00",
               "kinds": [{"template": "account_locked", "count": 13}, {"template": "role_changed", "count": 1}],
               "organisations": ["Acme https://evil.example/unlock", "Beta"], "more_organisations": 12})
    }

    #[test]
    fn a_combined_alert_counts_kinds_and_names_organisations_defanged() {
        let english = paragraphs(Language::English, &combined()).join("\n");
        assert!(english.contains("14 more security alert(s)"), "{english}");
        assert!(english.contains("sign-in blocked after wrong passwords × 13"));
        assert!(english.contains("role changed × 1"));
        assert!(english.contains("“Acme https[:]//evil[.]example/unlock”, “Beta” and 12 more"));
        assert!(!english.contains("evil.example"));
        let german = paragraphs(Language::German, &combined()).join("\n");
        assert!(
            german.contains("14 weitere Sicherheitshinweis(e)"),
            "{german}"
        );
        assert!(german.contains("„Beta“ und 12 weiteren"));
    }

    #[test]
    fn without_combined_alerts_nothing_is_added() {
        assert!(paragraphs(Language::English, &Value::Null).is_empty());
        assert!(paragraphs(Language::German, &json!({"count": 0})).is_empty());
    }

    #[test]
    fn every_security_alert_has_a_label_in_both_languages() {
        for template in Template::ALL
            .into_iter()
            .filter(Template::is_security_alert)
        {
            let english = label(Some(template), Language::English);
            let german = label(Some(template), Language::German);
            assert_ne!(english, "other", "{template:?}");
            assert_ne!(english, german, "{template:?}");
        }
    }
}
