//! Text that people chose, not the platform: organisation, team and person names. It goes
//! into an email only made harmless (ADR 0026, `docs/security.md`):
//!
//! - never in the `From` name (always `EMAIL_FROM`) and never at the start of a subject;
//! - control, bidirectional-override and zero-width characters removed, whitespace collapsed,
//!   at most [`MAX_CHARS`] characters;
//! - links and domains defanged (`https://evil.example` reads `https[:]//evil[.]example`), so
//!   that no mail client turns them into something to click and no name reads like an
//!   address of ours;
//! - organisation and team names quoted (“Acme” in English, „Acme“ in German), so that they
//!   read as a name, not as our words.

use serde_json::Value;

use super::templates::Language;

/// The longest name an email shows; longer ones end in `…`.
pub const MAX_CHARS: usize = 60;

/// `text` made harmless for an email body or subject (see the module's rules).
pub fn tame(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            space = !cleaned.is_empty();
            continue;
        }
        if space {
            cleaned.push(' ');
            space = false;
        }
        cleaned.push(c);
    }
    let defanged = defang(&cleaned);
    let mut chars = defanged.chars();
    let mut shown: String = chars.by_ref().take(MAX_CHARS).collect();
    if chars.next().is_some() {
        shown = shown.trim_end().to_owned();
        shown.push('…');
    }
    shown
}

/// A tamed name in the language's quotation marks.
pub fn quoted(text: &str, language: Language) -> String {
    let tamed = tame(text);
    match language {
        Language::English => format!("“{tamed}”"),
        Language::German => format!("„{tamed}“"),
    }
}

/// Characters that change how text displays without showing themselves: bidirectional
/// controls (which can make `moc.live` read `evil.com`), zero-width characters and the
/// byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{061C}'
        | '\u{00AD}')
}

/// Dots between letters or digits (ASCII and the full-width and ideographic dots some
/// clients also link) become `[.]`; `://` becomes `[:]//`.
fn defang(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let between = i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if matches!(c, '.' | '\u{FF0E}' | '\u{3002}' | '\u{FF61}') && between {
            out.push_str("[.]");
        } else if c == ':' && chars.get(i + 1) == Some(&'/') && chars.get(i + 2) == Some(&'/') {
            out.push_str("[:]");
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// The variables with every name people chose made harmless (`foreign_text`): person names
/// tamed, organisation and team names tamed and quoted; a name that tames to nothing is
/// left out, so that the template's own word stands in.
pub fn tamed(variables: &Value, language: Language) -> Value {
    let mut variables = variables.clone();
    if let Some(map) = variables.as_object_mut() {
        for (key, quote) in [
            ("display_name", false),
            ("inviter_name", false),
            ("member_name", false),
            ("tenant_name", true),
            ("team_name", true),
            ("webhook_url", false),
        ] {
            let Some(text) = map.get(key).and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let shown = tame(&text);
            if shown.is_empty() {
                map.remove(key);
            } else if quote {
                map.insert(key.into(), Value::String(quoted(&text, language)));
            } else {
                map.insert(key.into(), Value::String(shown));
            }
        }
    }
    variables
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn links_and_domains_are_defanged() {
        assert_eq!(
            tame("Unlock at https://evil.example/login now"),
            "Unlock at https[:]//evil[.]example/login now"
        );
        assert_eq!(tame("support@evil.example"), "support@evil[.]example");
        assert_eq!(tame("www．evil。example"), "www[.]evil[.]example");
        assert_eq!(
            tame("Acme Inc."),
            "Acme Inc.",
            "a full stop is not a domain"
        );
    }

    #[test]
    fn invisible_and_control_characters_go_and_whitespace_collapses() {
        assert_eq!(tame("Ac\u{202E}me\u{200B}\r\nBcc: x\tY  "), "Acme Bcc: x Y");
        assert_eq!(tame("\u{202E}\u{200B}"), "");
    }

    #[test]
    fn long_names_are_cut() {
        let shown = tame(&"a".repeat(500));
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn names_are_quoted_in_each_language() {
        assert_eq!(quoted("Acme", Language::English), "“Acme”");
        assert_eq!(quoted("Acme", Language::German), "„Acme“");
    }

    /// Every email, rendered with names an attacker chose, keeps them harmless and never
    /// lets one start the subject.
    #[test]
    fn no_email_lets_a_chosen_name_start_the_subject_or_carry_a_link() {
        use super::super::templates::render;
        use infra::email_jobs::Template;
        let evil = "Zed https://evil.example/unlock";
        for template in Template::ALL {
            for locale in ["en", "de"] {
                let rendered = render(
                    template,
                    &serde_json::json!({"display_name": evil, "tenant_name": evil,
                        "inviter_name": evil, "member_name": evil, "team_name": evil,
                        "locale": locale, "link": "https://people.example/x?token=t",
                        "combined": {"count": 2, "kinds": [{"template": "role_changed", "count": 2}],
                                     "organisations": [evil]}}),
                );
                let subject = rendered.subject.trim_start_matches(['“', '„', '"']);
                assert!(
                    !subject.starts_with("Zed"),
                    "{template:?}: {}",
                    rendered.subject
                );
                for part in [&rendered.subject, &rendered.text, &rendered.html] {
                    assert!(!part.contains("evil.example"), "{template:?}: {part}");
                    assert!(!part.contains("https://evil"), "{template:?}: {part}");
                }
                if rendered.text.contains("evil") {
                    assert!(
                        rendered.text.contains("https[:]//evil[.]example"),
                        "{template:?}: {}",
                        rendered.text
                    );
                }
            }
        }
    }

    #[test]
    fn organisation_names_are_quoted_and_person_names_are_not() {
        use super::super::templates::render;
        use infra::email_jobs::Template;
        let english = render(
            Template::Welcome,
            &serde_json::json!({"display_name": "Ada", "tenant_name": "Acme"}),
        );
        assert_eq!(english.subject, "Welcome to “Acme”");
        assert!(english.text.starts_with("Hello Ada,"), "{}", english.text);
        let german = render(
            Template::Welcome,
            &serde_json::json!({"display_name": "Ada", "tenant_name": "Acme", "locale": "de"}),
        );
        assert_eq!(german.subject, "Willkommen bei „Acme“");
        // A name of nothing but invisible characters is no name: the template's word stands.
        let blank = render(
            Template::Welcome,
            &serde_json::json!({"display_name": "\u{202E}\u{200B}", "tenant_name": "\u{200B}"}),
        );
        assert!(blank.text.starts_with("Hello there,"), "{}", blank.text);
        assert_eq!(blank.subject, "Welcome to Eventra");
    }

    proptest! {
        #[test]
        fn nothing_tamed_can_be_linked_or_break_a_header(text in "\\PC{0,200}|[a-z.:/ @\u{202E}\r\n]{0,80}") {
            let shown = tame(&text);
            prop_assert!(!shown.contains("://"));
            prop_assert!(!shown.chars().any(|c| c.is_control() || is_invisible(c)));
            prop_assert!(shown.chars().count() <= MAX_CHARS + 1);
            let chars: Vec<char> = shown.chars().collect();
            for window in chars.windows(3) {
                prop_assert!(
                    !(window[0].is_alphanumeric() && window[1] == '.' && window[2].is_alphanumeric()),
                    "a domain survived in {shown:?}"
                );
            }
        }
    }
}
