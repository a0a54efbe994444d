//! Opaque cursors for keyset pagination: a page continues strictly after the last item of
//! the previous one, so items are never repeated or skipped while paging, whatever is
//! written meanwhile.

use api_common::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Where the next page starts; `kind` ties a cursor to the list it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub kind: String,
    /// Log lists (newest first): items with a lower position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_position: Option<i64>,
    /// User lists: items after this (created at in microseconds, user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_created_micros: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_id: Option<Uuid>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor given for the list `kind`; an empty one means the first page.
    pub fn decode_optional(text: Option<&str>, kind: &str) -> Result<Option<Self>, ApiError> {
        match text.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => Self::decode(text, kind).map(Some),
        }
    }

    /// Decodes a cursor given for the list `kind`.
    pub fn decode(text: &str, kind: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::Validation(
                "cursor is not valid for this list; use next_cursor as given".into(),
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.kind != kind {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

/// The page size asked for, bounded.
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// A page of rows fetched with `limit + 1` in `(created_at, id)` order: the rows to answer,
/// and the cursor after the last of them (its `created_micros` column and `id_column`) when
/// more follow.
pub fn created_page<'r>(
    rows: &'r [tokio_postgres::Row],
    limit: i64,
    kind: &str,
    id_column: &str,
) -> (&'r [tokio_postgres::Row], Option<String>) {
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit.max(0) as usize)];
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(
            Cursor {
                kind: kind.to_owned(),
                before_position: None,
                after_created_micros: Some(last.get("created_micros")),
                after_id: Some(last.get(id_column)),
            }
            .encode(),
        ),
        _ => None,
    };
    (rows, next_cursor)
}

/// A `q` text for `ILIKE`: wildcards in it match themselves.
pub fn like_pattern(q: &str) -> String {
    let escaped = q
        .trim()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_only_for_its_own_list() {
        let cursor = Cursor {
            kind: "audit".into(),
            before_position: Some(42),
            after_created_micros: None,
            after_id: None,
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, "audit").expect("valid"), cursor);
        assert!(Cursor::decode(&text, "activity").is_err());
        assert!(Cursor::decode("not a cursor", "audit").is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).expect("default"), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
        assert!(limit(Some(-1)).is_err());
        assert_eq!(limit(Some(1)).expect("the smallest page"), 1);
        assert_eq!(limit(Some(MAX_LIMIT)).expect("the largest page"), MAX_LIMIT);
        assert_eq!(like_pattern("50%_a"), "%50\\%\\_a%");
    }

    #[test]
    fn an_absent_or_blank_cursor_is_the_first_page_and_a_given_one_is_decoded() {
        assert_eq!(Cursor::decode_optional(None, "users").expect("none"), None);
        assert_eq!(
            Cursor::decode_optional(Some("  "), "users").expect("blank"),
            None
        );
        let cursor = Cursor {
            kind: "users".into(),
            before_position: None,
            after_created_micros: Some(7),
            after_id: Some(Uuid::from_u128(9)),
        };
        let text = format!(" {} ", cursor.encode());
        assert_eq!(
            Cursor::decode_optional(Some(&text), "users").expect("valid"),
            Some(cursor)
        );
        assert!(Cursor::decode_optional(Some("garbage"), "users").is_err());
    }
}
