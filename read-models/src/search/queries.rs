//! The two searches the query API offers: users (name and email, role, status, in creation
//! order) and the audit log (type, user, time, words in the summary, newest first).

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{IndexReader, Order, TantivyDocument, Term};
use uuid::Uuid;

use super::SearchFields;

/// One clause per word of `q` (at most eight): the word must match one of `fields` as a
/// prefix, or, from four letters on, with one typo.
fn words(q: &str, fields: [Field; 2]) -> Vec<(Occur, Box<dyn Query>)> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(8)
        .map(|word| {
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for field in fields {
                let term = Term::from_field_text(field, &word);
                alternatives.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, true)),
                ));
                if word.chars().count() >= 4 {
                    alternatives
                        .push((Occur::Should, Box::new(FuzzyTermQuery::new(term, 1, true))));
                }
            }
            (
                Occur::Must,
                Box::new(BooleanQuery::new(alternatives)) as Box<dyn Query>,
            )
        })
        .collect()
}

/// What a users search asks for.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    pub tenant_id: Uuid,
    pub q: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    /// Continue after this (created at in microseconds, user id).
    pub after: Option<(i64, Uuid)>,
    pub limit: usize,
}

/// The ids of the matching users in creation order, each with its creation time.
pub fn search_users(
    reader: &IndexReader,
    fields: &SearchFields,
    search: &UserSearch,
) -> tantivy::Result<Vec<(i64, Uuid)>> {
    let term = |field: Field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    // The tenant is a mandatory term of every query: isolation happens inside the index.
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, term(fields.kind, "user")),
        (
            Occur::Must,
            term(fields.tenant_id, &search.tenant_id.to_string()),
        ),
    ];
    if let Some(role) = &search.role {
        clauses.push((Occur::Must, term(fields.role, role)));
    }
    if let Some(status) = &search.status {
        clauses.push((Occur::Must, term(fields.status, status)));
    }
    // Who left or was removed is no longer one of the tenant's users.
    clauses.push((Occur::MustNot, term(fields.status, "removed")));
    // Nor is an account waiting for its purge (an admin finds it by id).
    clauses.push((Occur::MustNot, term(fields.status, "deletion_scheduled")));
    if let Some(q) = &search.q {
        clauses.extend(words(q, [fields.name, fields.email]));
    }
    if let Some((created, _)) = search.after {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                std::ops::Bound::Included(Term::from_field_i64(fields.created, created)),
                std::ops::Bound::Unbounded,
            )),
        ));
    }
    let query = BooleanQuery::new(clauses);
    let searcher = reader.searcher();
    // One more than the page (to know whether there is a next one); after a cursor, enough
    // more to skip the ties at the cursor's exact time.
    let wanted = search.limit + if search.after.is_some() { 64 } else { 1 };
    let hits = searcher.search(
        &query,
        &TopDocs::with_limit(wanted).order_by_fast_field::<i64>("created", Order::Asc),
    )?;
    let mut found = Vec::with_capacity(hits.len());
    for (created, address) in hits {
        let doc: TantivyDocument = searcher.doc(address)?;
        let Some(user_id) = doc
            .get_first(fields.doc_id)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::try_parse(v).ok())
        else {
            continue;
        };
        let created = created.unwrap_or_default();
        if let Some((after_created, after_id)) = search.after
            && (created, user_id) <= (after_created, after_id)
        {
            continue;
        }
        found.push((created, user_id));
        if found.len() > search.limit {
            break;
        }
    }
    Ok(found)
}

/// What an audit search asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    pub tenant_id: Uuid,
    pub event_type: Option<String>,
    /// The actor or the subject.
    pub user_id: Option<Uuid>,
    pub from_micros: Option<i64>,
    pub to_micros: Option<i64>,
    pub q: Option<String>,
    /// Only events with a lower position (the cursor).
    pub before_position: Option<i64>,
    pub limit: usize,
}

/// The event ids of matching audit documents, newest first, with their positions.
pub fn search_audit(
    reader: &IndexReader,
    fields: &SearchFields,
    search: &AuditSearch,
) -> tantivy::Result<Vec<(i64, Uuid)>> {
    let term = |field: Field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, term(fields.kind, "audit")),
        (
            Occur::Must,
            term(fields.tenant_id, &search.tenant_id.to_string()),
        ),
    ];
    if let Some(event_type) = &search.event_type {
        clauses.push((Occur::Must, term(fields.event_type, event_type)));
    }
    if let Some(user_id) = search.user_id {
        let id = user_id.to_string();
        clauses.push((
            Occur::Must,
            Box::new(BooleanQuery::new(vec![
                (Occur::Should, term(fields.subject_id, &id)),
                (Occur::Should, term(fields.actor_id, &id)),
            ])),
        ));
    }
    let bound = |value: Option<i64>, field: Field, inclusive: bool| match value {
        Some(v) if inclusive => std::ops::Bound::Included(Term::from_field_i64(field, v)),
        Some(v) => std::ops::Bound::Excluded(Term::from_field_i64(field, v)),
        None => std::ops::Bound::Unbounded,
    };
    if search.from_micros.is_some() || search.to_micros.is_some() {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                bound(search.from_micros, fields.occurred, true),
                bound(search.to_micros, fields.occurred, true),
            )),
        ));
    }
    if search.before_position.is_some() {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                std::ops::Bound::Unbounded,
                bound(search.before_position, fields.position, false),
            )),
        ));
    }
    if let Some(q) = &search.q {
        clauses.extend(words(q, [fields.summary, fields.event_type_text]));
    }
    let searcher = reader.searcher();
    let hits = searcher.search(
        &BooleanQuery::new(clauses),
        &TopDocs::with_limit(search.limit + 1).order_by_fast_field::<i64>("position", Order::Desc),
    )?;
    let mut found = Vec::with_capacity(hits.len());
    for (position, address) in hits {
        let doc: TantivyDocument = searcher.doc(address)?;
        if let Some(event_id) = doc
            .get_first(fields.doc_id)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::try_parse(v).ok())
        {
            found.push((position.unwrap_or_default(), event_id));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::open;
    use tantivy::{IndexWriter, doc};

    #[test]
    fn an_audit_document_is_found_by_tenant_and_type_only_in_its_tenant() {
        let dir =
            std::env::temp_dir().join(format!("eventra-search-unit-{}", Uuid::new_v4().simple()));
        let (index, fields) = open(&dir).expect("index");
        let mut writer: IndexWriter = index.writer(15_000_000).expect("writer");
        let tenant = Uuid::new_v4();
        for (tenant_id, position) in [(tenant, 1i64), (Uuid::new_v4(), 2)] {
            writer
                .add_document(doc!(
                    fields.kind => "audit",
                    fields.tenant_id => tenant_id.to_string(),
                    fields.doc_id => Uuid::new_v4().to_string(),
                    fields.event_type => "user.created",
                    fields.event_type_text => "user created",
                    fields.summary => "user signed up",
                    fields.subject_id => "",
                    fields.actor_id => "",
                    fields.occurred => 5i64,
                    fields.position => position,
                ))
                .expect("add");
        }
        writer.commit().expect("commit");
        let reader = index.reader().expect("reader");
        let search = |q: Option<&str>, event_type: Option<&str>| {
            search_audit(
                &reader,
                &fields,
                &AuditSearch {
                    tenant_id: tenant,
                    event_type: event_type.map(str::to_owned),
                    q: q.map(str::to_owned),
                    limit: 10,
                    ..Default::default()
                },
            )
            .expect("search")
        };
        assert_eq!(search(None, None).len(), 1);
        assert_eq!(search(None, Some("user.created")).len(), 1);
        assert_eq!(search(Some("signed"), None).len(), 1);
        assert_eq!(search(Some("sgned"), None).len(), 1, "a typo still matches");
        assert_eq!(search(None, Some("user.deleted")).len(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
