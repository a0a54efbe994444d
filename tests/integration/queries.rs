use std::collections::HashSet;
use std::sync::Arc;

use domain::Role;
use integration_tests::{Pipeline, TenantFixture, UserFixture};
use reqwest::StatusCode;
use serde_json::json;

/// A tenant with an admin and two members, projected.
async fn populated(pipeline: &Pipeline) -> (TenantFixture, UserFixture, UserFixture) {
    let tenant = pipeline.app.sign_up_tenant("Readers").await;
    let alice = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Alice Archer")
        .await;
    let bob = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Bob Builder")
        .await;
    pipeline.wait_for_projections().await;
    (tenant, alice, bob)
}

#[tokio::test]
async fn every_query_endpoint_refuses_other_tenants_members_and_bad_tokens() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let (tenant, alice, bob) = populated(&pipeline).await;
    let other = pipeline.app.sign_up_tenant("Outsiders").await;
    let revoked = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Revoked Session")
        .await;
    let revoke = pipeline
        .app
        .revoke_session(revoked.session_id, &revoked.token)
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let expired = pipeline
        .app
        .expired_token(tenant.admin_id, tenant.tenant_id, Role::Admin)
        .await;

    let t = tenant.tenant_id;
    let admin_views = [
        format!("/v1/tenants/{t}/users"),
        format!("/v1/tenants/{t}/users/{}", bob.user_id),
        format!("/v1/tenants/{t}/activity"),
        format!("/v1/tenants/{t}/audit"),
        format!("/v1/tenants/{t}/email-jobs"),
    ];
    for path in &admin_views {
        let answer = pipeline
            .app
            .query(path, Some(&tenant.admin_token), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "the admin reads {path}: {:?}",
            answer.body
        );
        let outsider = pipeline
            .app
            .query(path, Some(&other.admin_token), None)
            .await;
        assert_eq!(
            outsider.status,
            StatusCode::NOT_FOUND,
            "another tenant's admin on {path}"
        );
        assert!(outsider.is_problem());
        let member = pipeline.app.query(path, Some(&alice.token), None).await;
        assert_eq!(member.status, StatusCode::FORBIDDEN, "a member on {path}");
        assert!(member.is_problem());
    }
    for path in admin_views
        .iter()
        .map(String::as_str)
        .chain(["/v1/me", "/v1/projections"])
    {
        for (token, who) in [
            (None, "no token"),
            (Some(expired.as_str()), "expired"),
            (Some(revoked.token.as_str()), "revoked"),
        ] {
            let answer = pipeline.app.query(path, token, None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{who} on {path}");
            assert!(answer.is_problem());
        }
    }
    // Members see their own profile, through /v1/me and by id.
    let own = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/users/{}", alice.user_id),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body["display_name"], "Alice Archer");
    let me = pipeline.app.query("/v1/me", Some(&alice.token), None).await;
    assert_eq!(me.body["user_id"], alice.user_id.to_string());
    assert_eq!(me.body["email"], alice.email);
    // The other tenant's admin cannot reach the user through their own tenant's path either.
    let smuggled = pipeline
        .app
        .query(
            &format!("/v1/tenants/{}/users/{}", other.tenant_id, bob.user_id),
            Some(&other.admin_token),
            None,
        )
        .await;
    assert_eq!(smuggled.status, StatusCode::NOT_FOUND);
    for path in ["/v1/projections"] {
        let answer = pipeline
            .app
            .query(path, Some(&tenant.admin_token), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "a tenant admin on {path}"
        );
    }
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_query_with_the_position_of_a_write_sees_that_write() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let (_, alice, _) = populated(&pipeline).await;
    for round in 0..5 {
        let name = format!("Alice {round}");
        let update = pipeline
            .app
            .update_me(&alice.token, json!({"display_name": name}))
            .await;
        let position = update.body["position"].as_i64().expect("position");
        let me = pipeline
            .app
            .query("/v1/me", Some(&alice.token), Some(position))
            .await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["display_name"], name, "read-your-writes");
        let reflected: i64 = me.headers["x-projection-position"]
            .to_str()
            .expect("header")
            .parse()
            .expect("number");
        assert!(reflected >= position);
    }
    running.stop().await;

    // With the projector stopped, the wait is bounded and says so.
    let update = pipeline
        .app
        .update_me(&alice.token, json!({"display_name": "Unseen"}))
        .await;
    let position = update.body["position"].as_i64().expect("position");
    // Nothing projects it (the projector is stopped): the query gives up after its bound
    // instead of waiting for a position that never comes.
    let late = tokio::time::timeout(
        integration_tests::WAIT_LIMIT,
        pipeline
            .app
            .query("/v1/me", Some(&alice.token), Some(position)),
    )
    .await
    .expect("the query answers without the projection");
    assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(late.is_problem());
    assert!(late.headers.contains_key("retry-after"));
    for bad in ["-1", "abc", "99999999"] {
        let answer = pipeline
            .app
            .send(
                pipeline
                    .app
                    .http
                    .get(format!("{}/v1/me", pipeline.app.query_address))
                    .bearer_auth(&alice.token)
                    .header("X-Min-Position", bad),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    pipeline.finish().await;
}

#[tokio::test]
async fn paging_through_a_log_while_it_grows_sees_every_item_once() {
    let pipeline = Arc::new(Pipeline::start().await);
    let running = pipeline.spawn_projector();
    let tenant = pipeline.app.sign_up_tenant("Paging").await;
    let mut members = Vec::new();
    for index in 0..12 {
        members.push(
            pipeline
                .app
                .sign_up_user(tenant.tenant_id, &format!("Pager {index}"))
                .await,
        );
    }
    pipeline.wait_for_projections().await;
    let path = format!("/v1/tenants/{}/activity", tenant.tenant_id);
    let before: HashSet<String> = {
        let all = pipeline
            .app
            .query(
                &format!("{path}?limit=100"),
                Some(&tenant.admin_token),
                None,
            )
            .await;
        all.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["event_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(before.len() >= 25, "{}", before.len());

    let writer = {
        let pipeline = Arc::clone(&pipeline);
        let tokens: Vec<String> = members.iter().map(|m| m.token.clone()).collect();
        tokio::spawn(async move {
            for (index, token) in tokens.iter().enumerate() {
                let _ = pipeline
                    .app
                    .update_me(token, json!({"display_name": format!("Moved {index}")}))
                    .await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cursor) => format!("{path}?limit=7&cursor={cursor}"),
            None => format!("{path}?limit=7"),
        };
        let page = pipeline
            .app
            .query(&url, Some(&tenant.admin_token), None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 7);
        seen.extend(
            items
                .iter()
                .map(|i| i["event_id"].as_str().unwrap_or_default().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    writer.await.expect("writer");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no item was repeated");
    for item in &before {
        assert!(seen.contains(item), "item {item} was skipped");
    }
    running.stop().await;
    if let Ok(pipeline) = Arc::try_unwrap(pipeline) {
        pipeline.finish().await;
    }
}

#[tokio::test]
async fn filters_narrow_the_logs_and_malformed_filters_are_refused() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let (tenant, alice, _) = populated(&pipeline).await;
    let update = pipeline
        .app
        .update_me(&alice.token, json!({"locale": "de-CH"}))
        .await;
    let position = update.body["position"].as_i64().expect("position");
    let t = tenant.tenant_id;
    let token = Some(tenant.admin_token.as_str());

    let updates = pipeline
        .app
        .query(
            &format!(
                "/v1/tenants/{t}/activity?action=profile_updated&user_id={}",
                alice.user_id
            ),
            token,
            Some(position),
        )
        .await;
    let items = updates.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{:?}", updates.body);
    assert_eq!(items[0]["details"]["fields"], json!(["locale"]));

    let created = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/audit?type=user.created"),
            token,
            Some(position),
        )
        .await;
    assert_eq!(created.body["items"].as_array().expect("items").len(), 3);
    let searched = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/audit?q=locale"),
            token,
            Some(position),
        )
        .await;
    assert_eq!(searched.body["items"].as_array().expect("items").len(), 1);
    let empty_range = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/audit?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z"),
            token,
            None,
        )
        .await;
    assert_eq!(empty_range.status, StatusCode::OK);
    assert!(
        empty_range.body["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );

    let users = pipeline
        .app
        .query(&format!("/v1/tenants/{t}/users?q=archer"), token, None)
        .await;
    let names: Vec<&str> = users.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["display_name"].as_str())
        .collect();
    assert_eq!(names, ["Alice Archer"]);
    let by_email = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/users?q={}", &alice.email[..8]),
            token,
            None,
        )
        .await;
    assert_eq!(by_email.body["items"].as_array().expect("items").len(), 1);
    let admins = pipeline
        .app
        .query(&format!("/v1/tenants/{t}/users?role=admin"), token, None)
        .await;
    assert_eq!(admins.body["items"].as_array().expect("items").len(), 1);

    for bad in [
        format!("/v1/tenants/{t}/audit?from=yesterday"),
        format!("/v1/tenants/{t}/audit?type=user.teleported"),
        format!("/v1/tenants/{t}/audit?colour=blue"),
        format!("/v1/tenants/{t}/audit?limit=0"),
        format!("/v1/tenants/{t}/audit?limit=1000"),
        format!("/v1/tenants/{t}/audit?cursor=garbage"),
        format!("/v1/tenants/{t}/activity?action=flying"),
        format!("/v1/tenants/{t}/activity?user_id=not-a-uuid"),
        format!("/v1/tenants/{t}/users?role=owner"),
        format!("/v1/tenants/{t}/users?status=sleeping"),
    ] {
        let answer = pipeline.app.query(&bad, token, None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.body
        );
        assert!(answer.is_problem(), "{bad}");
    }
    // A cursor of one list is refused by another.
    let page = pipeline
        .app
        .query(&format!("/v1/tenants/{t}/audit?limit=1"), token, None)
        .await;
    let cursor = page.body["next_cursor"].as_str().expect("a cursor");
    let misuse = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/activity?cursor={cursor}"),
            token,
            None,
        )
        .await;
    assert_eq!(misuse.status, StatusCode::BAD_REQUEST);
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_platform_admin_granted_by_an_operator_sees_the_projections() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let (tenant, _, _) = populated(&pipeline).await;
    command_api::operator::grant_platform_admin(&pipeline.app.settings, tenant.admin_id)
        .await
        .expect("grant");
    let login = pipeline
        .app
        .log_in(
            tenant.tenant_id,
            &tenant.admin_email,
            integration_tests::PASSWORD,
        )
        .await;
    let token = login.str("access_token");
    pipeline.wait_for_projections().await;
    let answer = pipeline
        .app
        .query("/v1/projections", Some(&token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let names: Vec<&str> = answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "relay",
            "tenants",
            "users",
            "memberships",
            "sessions",
            "activity",
            "audit",
            "teams",
            "invitations",
            "timers",
            "search",
            "email-jobs",
            "webhook-deliveries"
        ]
    );
    assert!(
        answer.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["state"] == "caught_up")
    );
    let audit: String = pipeline
        .app
        .db
        .query_one(
            "SELECT summary FROM rm_audit WHERE event_type = 'user.platform_admin_granted'",
            &[],
        )
        .await
        .expect("the grant is audited")
        .get(0);
    assert!(audit.contains("platform administrator"));
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn the_search_index_finds_users_by_name_email_prefix_and_typo_within_the_tenant_only() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let tenant = pipeline.app.sign_up_tenant("Searchers").await;
    let grace = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Grace Hopper")
        .await;
    let _ada = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Ada Lovelace")
        .await;
    let alan = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Alan Turing")
        .await;
    let other = pipeline.app.sign_up_tenant("Elsewhere").await;
    let _twin = pipeline
        .app
        .sign_up_user(other.tenant_id, "Grace Twin")
        .await;
    pipeline.wait_for_projections().await;
    let t = tenant.tenant_id;
    let token = Some(tenant.admin_token.as_str());
    let names = |answer: &integration_tests::Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["display_name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (q, expected) in [
        ("grace", vec!["Grace Hopper"]),
        ("grac", vec!["Grace Hopper"]),
        ("hoper", vec!["Grace Hopper"]),
        ("LOVELACE", vec!["Ada Lovelace"]),
        ("alan turing", vec!["Alan Turing"]),
        ("nobody", vec![]),
    ] {
        let answer = pipeline
            .app
            .query(&format!("/v1/tenants/{t}/users?q={q}"), token, None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{q}: {:?}", answer.body);
        assert_eq!(names(&answer), expected, "q={q}");
    }
    let local_part = grace
        .email
        .split('@')
        .next()
        .expect("local part")
        .replace('.', " ");
    let by_email = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/users?q={local_part}"),
            token,
            None,
        )
        .await;
    assert_eq!(names(&by_email), ["Grace Hopper"]);

    // Paging through the whole tenant one by one sees each user once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = pipeline
            .app
            .query(
                &format!("/v1/tenants/{t}/users?limit=1&cursor={cursor}"),
                token,
                None,
            )
            .await;
        seen.extend(names(&page));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.contains(&"Searchers Admin".to_owned()));

    // An erased user disappears from the index, visibly so right after the command.
    let erased = pipeline
        .app
        .delete(
            &format!("/v1/tenants/{t}/users/{}?mode=erase", alan.user_id),
            Some(&tenant.admin_token),
        )
        .await;
    let position = erased.body["position"].as_i64().expect("position");
    let after = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/users?q=alan"),
            token,
            Some(position),
        )
        .await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(names(&after).is_empty(), "{:?}", after.body);
    let reflected: i64 = after.headers["x-projection-position"]
        .to_str()
        .expect("header")
        .parse()
        .expect("number");
    assert!(reflected >= position);

    // A rename is searchable right after it.
    let renamed = pipeline
        .app
        .update_me(&grace.token, json!({"display_name": "Admiral Hopper"}))
        .await;
    let position = renamed.body["position"].as_i64().expect("position");
    let found = pipeline
        .app
        .query(
            &format!("/v1/tenants/{t}/users?q=admiral"),
            token,
            Some(position),
        )
        .await;
    assert_eq!(names(&found), ["Admiral Hopper"]);

    // `projector replay search` rebuilds beside the live index and switches readers over.
    let report = projector::replay::replay(
        &pipeline.pool,
        &pipeline.keys,
        projector::projections::Projection::Search,
        None,
        false,
    )
    .await
    .expect("rebuild");
    assert_eq!(
        report.checkpoint.transaction_id, 2,
        "the second generation is live"
    );
    assert!(report.events >= pipeline.app.event_count().await as u64);
    for (q, expected) in [
        ("admiral", vec!["Admiral Hopper"]),
        ("alan", vec![]),
        ("lovelace", vec!["Ada Lovelace"]),
    ] {
        let answer = pipeline
            .app
            .query(&format!("/v1/tenants/{t}/users?q={q}"), token, None)
            .await;
        assert_eq!(names(&answer), expected, "after the rebuild, q={q}");
    }
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn the_query_apis_readiness_names_each_dependency() {
    let pipeline = Pipeline::start().await;
    // No projector has built the search index yet: not ready, and it says why.
    let answer = pipeline
        .app
        .send(
            pipeline
                .app
                .http
                .get(format!("{}/ready", pipeline.app.query_address)),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["checks"]["postgres"]["status"], "up");
    assert_eq!(answer.body["checks"]["search_index"]["status"], "down");
    let running = pipeline.spawn_projector();
    pipeline.app.sign_up_tenant("Ready").await;
    pipeline.wait_for_projections().await;
    let answer = pipeline
        .app
        .send(
            pipeline
                .app
                .http
                .get(format!("{}/ready", pipeline.app.query_address)),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["checks"]["search_index"]["status"], "up");
    assert!(answer.body["checks"]["postgres"]["latency_ms"].is_number());
    running.stop().await;
    pipeline.finish().await;
}

/// Reads waiting for `X-Min-Position` hold no database connection, and one tenant cannot
/// park more than its share of them (ADR 0023): with three times more waiting reads of one
/// tenant than the query API has connections (and than the tenant's cap), another tenant's
/// read is answered while they wait, and the reads over the cap are refused at once (503
/// with `Retry-After`).
#[tokio::test]
async fn waiting_reads_hold_no_connection_and_one_tenant_cannot_park_more_than_its_share() {
    use integration_tests::{QUERY_WAITS_PER_TENANT, TestApp};
    let app = Arc::new(TestApp::spawn().await);
    let busy = app.sign_up_tenant("Waiting").await;
    let bystander = app.sign_up_tenant("Bystander").await;
    // No projector runs here: no view ever reaches the last position.
    let last: i64 = app
        .db
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .expect("position")
        .get(0);
    let started = std::time::Instant::now();
    let waits = 3 * QUERY_WAITS_PER_TENANT;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..waits {
        let app = Arc::clone(&app);
        let token = busy.admin_token.clone();
        let path = format!("/v1/tenants/{}/users", busy.tenant_id);
        tasks.spawn(async move {
            let answer = app.query(&path, Some(&token), Some(last)).await;
            (answer, started.elapsed())
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let read = app
        .query(
            &format!("/v1/tenants/{}/teams", bystander.tenant_id),
            Some(&bystander.admin_token),
            None,
        )
        .await;
    let answered_after = started.elapsed();
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);

    let mut refused_at_once = 0;
    let mut timed_out = 0;
    let mut last_wait_ended = std::time::Duration::ZERO;
    while let Some(joined) = tasks.join_next().await {
        let (answer, elapsed) = joined.expect("task");
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            answer.body
        );
        assert!(answer.headers.contains_key("retry-after"));
        let detail = answer.body["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if detail.contains("too many reads of this tenant") {
            refused_at_once += 1;
        } else {
            assert!(detail.contains("has not reached position"), "{detail}");
            timed_out += 1;
            last_wait_ended = last_wait_ended.max(elapsed);
        }
    }
    assert_eq!(
        timed_out, QUERY_WAITS_PER_TENANT,
        "the tenant's share waited"
    );
    assert_eq!(refused_at_once, waits - QUERY_WAITS_PER_TENANT);
    assert!(
        answered_after < last_wait_ended,
        "the other tenant's read ({answered_after:?}) was answered while the waits were open \
         (until {last_wait_ended:?})"
    );
}

/// A request that finds no free connection within the pool's wait is shed: a 503 problem
/// with `Retry-After`, not a request parked for as long as the others hold theirs.
#[tokio::test]
async fn a_pool_without_a_free_connection_sheds_the_request_after_its_wait() {
    use actix_web::ResponseError as _;
    let database_url = integration_tests::fresh_database().await;
    let pool = infra::db::pool_waiting(&database_url, 1, std::time::Duration::from_millis(200))
        .expect("pool");
    let _held = pool.get().await.expect("the only connection");
    let error = pool.get().await.expect_err("no connection is free");
    assert!(
        matches!(error, deadpool_postgres::PoolError::Timeout(_)),
        "{error:?}"
    );
    let answer = api_common::ApiError::from(eventstore::StoreError::from(error)).error_response();
    assert_eq!(answer.status().as_u16(), 503);
    assert!(answer.headers().contains_key("retry-after"));
}
