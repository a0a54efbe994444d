//! Given/when/then for bulk imports (columns, rows, the import's course) and a property:
//! however the rows arrive in batches, and whenever a cancellation comes, the counts add up
//! and nothing is recorded after the import is over.

use chrono::{TimeZone, Utc};
use domain::event::{ImportCounts, ImportEvent, RowError, UserEvent, UserSource};
use domain::import::{self, Import, ImportRow, ImportStatus};
use domain::{Actor, Context, DomainError, Role, TenantMembers};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const ADMIN: Uuid = Uuid::from_u128(0xad);
const MEMBER: Uuid = Uuid::from_u128(0x3e);
const IMPORT: Uuid = Uuid::from_u128(0x1);

fn members() -> TenantMembers {
    let mut members = TenantMembers::new(TENANT);
    for (user_id, role) in [(ADMIN, Role::Admin), (MEMBER, Role::Member)] {
        members.apply(
            user_id,
            &UserEvent::MemberJoined {
                tenant_id: TENANT,
                user_id,
                role,
            },
        );
    }
    members
}

fn as_user(user_id: Uuid, role: Role) -> Context {
    Context {
        now: Utc
            .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .expect("a time"),
        actor: Actor::User {
            user_id,
            tenant_id: TENANT,
            role,
        },
    }
}

fn started(total: u32) -> Import {
    let mut import = Import::default();
    for event in import::start(
        &members(),
        &Import::default(),
        (IMPORT, TENANT),
        "csv",
        total,
        &as_user(ADMIN, Role::Admin),
    )
    .expect("started")
    {
        import.apply(&event);
    }
    import
}

#[test]
fn the_columns_must_be_known_present_and_not_repeated() {
    let columns = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    assert!(import::check_columns(&columns(&["email", "display_name"])).is_ok());
    assert!(
        import::check_columns(&columns(&[
            "phone",
            "email",
            "locale",
            "display_name",
            "role"
        ]))
        .is_ok()
    );
    let refused = import::check_columns(&columns(&["email", "nickname", "age"]))
        .expect_err("refused")
        .to_string();
    assert!(
        refused.contains("unknown columns: nickname, age"),
        "{refused}"
    );
    assert!(
        refused.contains("missing columns: display_name"),
        "{refused}"
    );
    let repeated = import::check_columns(&columns(&["email", "display_name", "email"]))
        .expect_err("refused")
        .to_string();
    assert!(repeated.contains("repeated columns: email"), "{repeated}");
}

#[test]
fn a_row_obeys_the_signup_rules_and_its_refusal_quotes_nothing_of_it() {
    let row = ImportRow::parse([
        ("email", " Ada@Example.com "),
        ("display_name", "Ada"),
        ("role", "admin"),
        ("locale", "de-CH"),
        ("phone", ""),
    ])
    .expect("a row");
    assert_eq!(row.role, Role::Admin);
    assert_eq!(row.email.normalised(), "ada@example.com");
    assert!(row.phone.is_none());
    for (fields, column) in [
        (
            vec![("email", "not-an-address"), ("display_name", "A")],
            "email:",
        ),
        (
            vec![("email", "a@example.com"), ("display_name", "")],
            "display_name:",
        ),
        (
            vec![
                ("email", "a@example.com"),
                ("display_name", "A"),
                ("role", "owner"),
            ],
            "role:",
        ),
        (
            vec![
                ("email", "a@example.com"),
                ("display_name", "A"),
                ("phone", "call-me-maybe"),
            ],
            "phone:",
        ),
        (vec![("display_name", "A")], "email: missing"),
    ] {
        let reason = ImportRow::parse(fields.clone()).expect_err("refused");
        assert!(reason.starts_with(column), "{reason}");
        for (_, value) in fields {
            if value.len() > 3 {
                assert!(!reason.contains(value), "{reason} quotes {value}");
            }
        }
    }
}

#[test]
fn only_an_admin_starts_an_import_of_1_to_100000_rows() {
    let start = |total, context: &Context| {
        import::start(
            &members(),
            &Import::default(),
            (IMPORT, TENANT),
            "csv",
            total,
            context,
        )
    };
    assert_eq!(
        start(10, &as_user(MEMBER, Role::Member)),
        Err(DomainError::NotAllowed)
    );
    assert!(start(0, &as_user(ADMIN, Role::Admin)).is_err());
    assert!(start(100_001, &as_user(ADMIN, Role::Admin)).is_err());
    assert!(start(100_000, &as_user(ADMIN, Role::Admin)).is_ok());
    assert!(
        import::start(
            &members(),
            &started(1),
            (IMPORT, TENANT),
            "csv",
            1,
            &as_user(ADMIN, Role::Admin)
        )
        .is_err(),
        "an import starts once"
    );
}

#[test]
fn batches_add_up_to_completion_and_a_cancelled_import_records_nothing_more() {
    let mut import = started(5);
    assert_eq!(import.status, Some(ImportStatus::Queued));
    let batch = ImportCounts {
        processed: 3,
        created: 2,
        skipped: 0,
        failed: 1,
    };
    let errors = vec![RowError {
        row: 2,
        reason: "email: must look like name@example.com".into(),
    }];
    let events = import::record_batch(&import, batch, errors);
    assert_eq!(events.len(), 1, "not the last row yet");
    import.apply(&events[0]);
    assert_eq!(import.status, Some(ImportStatus::Running));
    let last = ImportCounts {
        processed: 2,
        created: 1,
        skipped: 1,
        failed: 0,
    };
    let events = import::record_batch(&import, last, Vec::new());
    assert!(matches!(
        events.last(),
        Some(ImportEvent::Completed { counts, .. })
            if *counts == ImportCounts { processed: 5, created: 3, skipped: 1, failed: 1 }
    ));
    for event in &events {
        import.apply(event);
    }
    assert!(matches!(
        import::cancel(&members(), &import, &as_user(ADMIN, Role::Admin)),
        Err(DomainError::ImportClosed(_))
    ));
    let mut cancelled = started(5);
    for event in
        import::cancel(&members(), &cancelled, &as_user(ADMIN, Role::Admin)).expect("cancelled")
    {
        cancelled.apply(&event);
    }
    assert!(import::record_batch(&cancelled, last, Vec::new()).is_empty());
    assert!(import::fail(&cancelled, "gone").is_empty());
    assert_eq!(
        import::cancel(&members(), &started(5), &as_user(MEMBER, Role::Member)),
        Err(DomainError::NotAllowed)
    );
}

#[test]
fn an_imported_account_has_no_password_the_rows_role_and_its_profile() {
    let row = ImportRow::parse([
        ("email", "grace@example.com"),
        ("display_name", "Grace"),
        ("locale", "en-GB"),
        ("phone", "+4915112345678"),
    ])
    .expect("a row");
    let user_id = Uuid::from_u128(0x99);
    let events = import::imported_user(TENANT, user_id, &row, ADMIN);
    assert!(matches!(
        &events[0],
        UserEvent::Created { password_hash, source: Some(UserSource::Import), .. } if password_hash.is_empty()
    ));
    assert!(matches!(
        events[1],
        UserEvent::MemberJoined {
            role: Role::Member,
            ..
        }
    ));
    assert!(matches!(
        &events[2],
        UserEvent::ProfileUpdated { phone: Some(_), locale: Some(_), updated_by, .. } if *updated_by == ADMIN
    ));
}

#[derive(Debug, Clone)]
enum Step {
    Batch(u32, u32, u32),
    Cancel,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u32..20, 0u32..20, 0u32..20).prop_map(|(c, s, f)| Step::Batch(c, s, f)),
        1 => Just(Step::Cancel),
    ]
}

proptest! {
    #[test]
    fn the_counts_add_up_and_nothing_is_recorded_once_the_import_is_over(
        total in 1u32..200,
        steps in proptest::collection::vec(step(), 1..30)
    ) {
        let mut import = started(total);
        let mut sum = ImportCounts::default();
        for step in steps {
            let over = !import.is_open();
            let events = match step {
                Step::Batch(created, skipped, failed) => {
                    let batch = ImportCounts { processed: created + skipped + failed, created, skipped, failed };
                    let events = import::record_batch(&import, batch, Vec::new());
                    if !events.is_empty() {
                        sum.processed += batch.processed;
                        sum.created += created;
                        sum.skipped += skipped;
                        sum.failed += failed;
                    }
                    events
                }
                Step::Cancel => import::cancel(&members(), &import, &as_user(ADMIN, Role::Admin)).unwrap_or_default(),
            };
            prop_assert!(!over || events.is_empty(), "an event after the end");
            for event in &events {
                import.apply(event);
            }
            prop_assert_eq!(import.counts, sum);
            prop_assert_eq!(
                import.counts.processed,
                import.counts.created + import.counts.skipped + import.counts.failed
            );
            if import.counts.processed >= total {
                prop_assert!(!import.is_open());
            }
        }
    }
}
