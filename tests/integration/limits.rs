//! Per-tenant rate limits, per-IP limits for anonymous requests, exemptions, the platform
//! admin's override, Redis-shared budgets, and the metrics that report them.

use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

fn header(answer: &integration_tests::Answer, name: &str) -> Option<u64> {
    answer
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_tenant_over_its_hourly_limit_gets_429_and_another_tenant_is_unaffected() {
    let app = TestApp::spawn_with(|s| s.traffic.standard_per_hour = 5).await;
    let busy = app.sign_up_tenant("Busy").await;
    let calm = app.sign_up_tenant("Calm").await;
    for expected_remaining in (0..5).rev() {
        let answer = app
            .update_me(&busy.admin_token, json!({"locale": "en"}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(header(&answer, "x-ratelimit-limit"), Some(5));
        assert_eq!(
            header(&answer, "x-ratelimit-remaining"),
            Some(expected_remaining)
        );
        let reset = header(&answer, "x-ratelimit-reset").expect("reset");
        assert!((1..=3600).contains(&reset), "{reset}");
    }
    let before = app.event_count().await;
    let refused = app
        .update_me(&busy.admin_token, json!({"locale": "de"}))
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.is_problem());
    assert_eq!(refused.body["type"], "urn:eventra:problem:rate-limited");
    let retry_after = header(&refused, "retry-after").expect("Retry-After");
    assert!((1..=3600).contains(&retry_after));
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    assert_eq!(
        app.event_count().await,
        before,
        "a refused request changes nothing"
    );

    let answer = app
        .update_me(&calm.admin_token, json!({"locale": "en"}))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "another tenant keeps its budget"
    );
    assert_eq!(header(&answer, "x-ratelimit-remaining"), Some(4));
}

#[tokio::test]
async fn premium_tenants_get_the_premium_limit() {
    let app = TestApp::spawn_with(|s| {
        s.traffic.standard_per_hour = 5;
        s.traffic.premium_per_hour = 50;
    })
    .await;
    let email = format!(
        "owner-{}@premium.example.com",
        uuid::Uuid::new_v4().simple()
    );
    let signup = app
        .post(
            "/v1/tenants",
            None,
            json!({"name": "Premium", "plan": "premium", "admin": {"email": email, "password": PASSWORD, "display_name": "Owner"}}),
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED);
    let login = app.log_in(signup.id("tenant_id"), &email, PASSWORD).await;
    let answer = app
        .update_me(&login.str("access_token"), json!({"locale": "en"}))
        .await;
    assert_eq!(header(&answer, "x-ratelimit-limit"), Some(50));
}

#[tokio::test]
async fn platform_admins_probes_and_documents_are_never_limited() {
    // Three anonymous requests an hour: the signup and the two logins below spend them all.
    let app = TestApp::spawn_with(|s| {
        s.traffic.standard_per_hour = 2;
        s.traffic.anonymous_per_hour = 3;
    })
    .await;
    let tenant = app.sign_up_tenant("Oversight").await;
    command_api::operator::grant_platform_admin(&app.settings, tenant.admin_id)
        .await
        .expect("grant");
    let login = app
        .log_in(tenant.tenant_id, &tenant.admin_email, PASSWORD)
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
    let token = login.str("access_token");
    for _ in 0..6 {
        let answer = app.update_me(&token, json!({"locale": "en"})).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.headers.get("x-ratelimit-limit").is_none());
    }
    // The address's anonymous budget is spent ...
    let refused = app
        .log_in(tenant.tenant_id, &tenant.admin_email, PASSWORD)
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // ... and still the probes and documents of both APIs answer, unlimited.
    for base in [&app.address, &app.query_address] {
        for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
            for _ in 0..4 {
                let mut get = app.http.get(format!("{base}{path}"));
                if path == "/metrics" {
                    get = get.bearer_auth(integration_tests::METRICS_TOKEN);
                }
                let answer = app.send(get).await;
                // The query API is not ready without a search index: a 503, never a 429.
                assert!(
                    answer.status.is_success()
                        || (path == "/ready" && answer.status == StatusCode::SERVICE_UNAVAILABLE),
                    "{base}{path}: {} {:?}",
                    answer.status,
                    answer.body
                );
                assert!(answer.headers.get("x-ratelimit-limit").is_none(), "{path}");
            }
        }
    }
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_client_address_so_password_guessing_is_throttled() {
    let app = TestApp::spawn_with(|s| s.traffic.anonymous_per_hour = 4).await;
    let tenant = app.sign_up_tenant("Guarded").await; // signup and login: 2 anonymous requests
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = app
            .log_in(
                tenant.tenant_id,
                &tenant.admin_email,
                "wrong password guess",
            )
            .await;
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let events = app.event_count().await;
    let refused = app
        .log_in(tenant.tenant_id, &tenant.admin_email, PASSWORD)
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.event_count().await,
        events,
        "a refused login records nothing"
    );
    // An authenticated caller is counted against their tenant, not the address.
    let answer = app
        .update_me(&tenant.admin_token, json!({"locale": "en"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn logins_are_limited_per_address_from_any_client_whether_or_not_it_has_an_account() {
    let app = TestApp::spawn_with(|s| s.login_per_address_per_hour = 3).await;
    let tenant = app.sign_up_tenant("Targeted").await; // the fixture's own login: 1 of 3
    let unknown = format!("ghost-{}@example.com", Uuid::new_v4().simple());
    let mut known = Vec::new();
    let mut ghost = Vec::new();
    for _ in 0..3 {
        known.push(
            app.log_in(tenant.tenant_id, &tenant.admin_email, "a wrong guess here")
                .await
                .status,
        );
        ghost.push(
            app.log_in(tenant.tenant_id, &unknown, "a wrong guess here")
                .await
                .status,
        );
    }
    use StatusCode as S;
    assert_eq!(
        known,
        [S::UNAUTHORIZED, S::UNAUTHORIZED, S::TOO_MANY_REQUESTS]
    );
    assert_eq!(
        ghost,
        [S::UNAUTHORIZED, S::UNAUTHORIZED, S::UNAUTHORIZED],
        "an address without an account is counted alike"
    );
    let events = app.event_count().await;
    let refused = app
        .log_in(
            tenant.tenant_id,
            &tenant.admin_email.to_uppercase(),
            PASSWORD,
        )
        .await;
    assert_eq!(
        refused.status,
        S::TOO_MANY_REQUESTS,
        "the address, however written"
    );
    assert!(refused.is_problem());
    assert!(refused.headers.get("retry-after").is_some());
    assert_eq!(
        app.log_in(tenant.tenant_id, &unknown, "a wrong guess here")
            .await
            .status,
        S::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.event_count().await,
        events,
        "refused before anything is recorded"
    );
    // Another address, and the same address in another tenant, are not affected.
    let other = app.sign_up_user(tenant.tenant_id, "Bystander").await;
    assert_eq!(
        app.log_in(tenant.tenant_id, &other.email, PASSWORD)
            .await
            .status,
        S::CREATED
    );
    // Reset requests for the spent address still answer 202, and queue nothing.
    let before = queued_resets(&app).await;
    let reset = app
        .post(
            &format!("/v1/tenants/{}/password-resets", tenant.tenant_id),
            None,
            json!({"email": tenant.admin_email}),
        )
        .await;
    assert_eq!(reset.status, S::ACCEPTED);
    assert_eq!(queued_resets(&app).await, before);
}

async fn queued_resets(app: &TestApp) -> i64 {
    app.db
        .query_one("SELECT count(*) FROM password_reset_requests", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_platform_admins_override_applies_and_is_audited() {
    let app = TestApp::spawn_with(|s| s.traffic.standard_per_hour = 100).await;
    let tenant = app.sign_up_tenant("Override").await;
    command_api::operator::set_rate_limit(&app.settings, tenant.tenant_id, Some(2))
        .await
        .expect("override");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = app
            .update_me(&tenant.admin_token, json!({"locale": "en"}))
            .await;
        statuses.push((answer.status, header(&answer, "x-ratelimit-limit")));
    }
    assert_eq!(
        statuses,
        [
            (StatusCode::OK, Some(2)),
            (StatusCode::OK, Some(2)),
            (StatusCode::TOO_MANY_REQUESTS, Some(2))
        ]
    );
    assert_eq!(
        app.stream_types(tenant.tenant_id).await,
        ["tenant.created", "tenant.rate_limit_changed"]
    );
    // Back to the plan's limit: the budget already spent still counts.
    command_api::operator::set_rate_limit(&app.settings, tenant.tenant_id, None)
        .await
        .expect("back to the plan");
    let answer = app
        .update_me(&tenant.admin_token, json!({"locale": "en"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(header(&answer, "x-ratelimit-limit"), Some(100));
    assert!(
        command_api::operator::set_rate_limit(&app.settings, tenant.tenant_id, Some(0))
            .await
            .is_err(),
        "a limit of zero is refused"
    );
}

#[tokio::test]
async fn two_api_instances_sharing_redis_spend_one_budget() {
    let redis_url =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let app = TestApp::spawn_with(|s| {
        s.traffic.standard_per_hour = 6;
        s.traffic.redis_url = Some(redis_url.clone().into());
    })
    .await;
    let second = command_api::Application::build(app.settings.clone())
        .await
        .expect("a second command API");
    let second_address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    let tenant = app.sign_up_tenant("Shared").await;
    let mut seen = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 {
            &app.address
        } else {
            &second_address
        };
        let answer = app
            .send(
                app.http
                    .patch(format!("{base}/v1/me"))
                    .bearer_auth(&tenant.admin_token)
                    .json(&json!({"locale": "en"})),
            )
            .await;
        seen.push((
            answer.status.as_u16(),
            header(&answer, "x-ratelimit-remaining"),
        ));
    }
    assert_eq!(
        seen,
        [
            (200, Some(5)),
            (200, Some(4)),
            (200, Some(3)),
            (200, Some(2)),
            (200, Some(1)),
            (200, Some(0)),
            (429, Some(0)),
            (429, Some(0))
        ]
    );
}

#[tokio::test]
async fn metrics_report_requests_events_rejections_and_the_pool() {
    let app = TestApp::spawn_with(|s| s.traffic.standard_per_hour = 2).await;
    let tenant = app.sign_up_tenant("Measured").await;
    for _ in 0..3 {
        app.update_me(&tenant.admin_token, json!({"locale": "en"}))
            .await;
    }
    app.query("/v1/me", Some(&tenant.admin_token), None).await;
    for base in [&app.address, &app.query_address] {
        let response = app
            .http
            .get(format!("{base}/metrics"))
            .bearer_auth(integration_tests::METRICS_TOKEN)
            .send()
            .await
            .expect("metrics");
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("text");
        for expected in [
            "eventra_http_requests_total{",
            "eventra_http_request_duration_seconds_bucket{",
            "eventra_db_pool_connections{",
        ] {
            assert!(text.contains(expected), "{base}: {expected} missing");
        }
    }
    let text = app.metrics(&app.address).await;
    let tenant_label = format!("tenant=\"{}\"", tenant.tenant_id);
    assert!(
        text.lines()
            .any(|l| l.starts_with("eventra_http_requests_total{")
                && l.contains("route=\"/v1/me\"")
                && l.contains("status=\"429\"")
                && l.contains(&tenant_label))
    );
    assert!(text.lines().any(
        |l| l.starts_with("eventra_rate_limit_rejections_total{") && l.contains(&tenant_label)
    ));
    assert!(
        text.lines()
            .any(|l| l.starts_with("eventra_rate_limit_usage_ratio{") && l.contains(&tenant_label))
    );
    assert!(text.contains("eventra_events_appended_total{type=\"user.profile_updated\"}"));
}

/// `/metrics` names tenants: a stranger (or a tenant's admin with their own token) gets a
/// problem and no series; the scraper with `METRICS_TOKEN` gets them all.
#[tokio::test]
async fn metrics_answer_only_the_operators_token() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Watched").await;
    app.query("/v1/me", Some(&tenant.admin_token), None).await;
    let tenant_id = tenant.tenant_id.to_string();
    for base in [&app.address, &app.query_address] {
        let url = format!("{base}/metrics");
        for (who, get) in [
            ("no token", app.http.get(&url)),
            (
                "a wrong token",
                app.http
                    .get(&url)
                    .bearer_auth("test-metrics-token-7f3a9c2f"),
            ),
            (
                "a tenant admin's token",
                app.http.get(&url).bearer_auth(&tenant.admin_token),
            ),
            (
                "a basic credential",
                app.http
                    .get(&url)
                    .basic_auth("metrics", Some(integration_tests::METRICS_TOKEN)),
            ),
        ] {
            let answer = app.send(get).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{base} with {who}");
            assert_eq!(
                answer.body["type"], "urn:eventra:problem:unauthenticated",
                "{who}"
            );
            assert!(answer.headers.contains_key("www-authenticate"), "{who}");
            assert!(
                !answer.body.to_string().contains(&tenant_id),
                "{base} with {who} names the tenant"
            );
        }
        let text = app.metrics(base).await;
        assert!(text.contains("eventra_http_requests_total{"), "{base}");
    }
    assert!(app.metrics(&app.address).await.contains(&tenant_id));

    // Outside development and without a token, nobody reads them.
    let closed = TestApp::spawn_with(|s| {
        s.traffic.metrics_access = api_common::operations::MetricsAccess::Closed;
    })
    .await;
    let answer = closed
        .send(
            closed
                .http
                .get(format!("{}/metrics", closed.address))
                .bearer_auth(integration_tests::METRICS_TOKEN),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("METRICS_TOKEN")),
        "{:?}",
        answer.body
    );
}

#[tokio::test]
async fn a_redis_that_stops_answering_lets_requests_through_and_is_counted() {
    let proxy = integration_tests::proxy::Proxy::start(
        std::env::var("TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".into()),
    )
    .await;
    let redis_url = format!("redis://127.0.0.1:{}", proxy.port);
    let app = TestApp::spawn_with(|s| {
        s.traffic.standard_per_hour = 2;
        s.traffic.redis_url = Some(redis_url.clone().into());
    })
    .await;
    let tenant = app.sign_up_tenant("Unanswered").await;
    let patch = || app.update_me(&tenant.admin_token, json!({"locale": "en"}));
    assert_eq!(patch().await.status, StatusCode::OK);
    assert_eq!(patch().await.status, StatusCode::OK);
    assert_eq!(
        patch().await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "Redis counts while it answers"
    );
    let errors_before = store_errors(&app).await;
    // Redis hangs: connections are taken and never answered. Requests are let through
    // (failing open) rather than refused or held.
    proxy.hang().await;
    for _ in 0..3 {
        let answer = tokio::time::timeout(integration_tests::WAIT_LIMIT, patch())
            .await
            .expect("a request does not wait for a hung Redis");
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    assert!(
        store_errors(&app).await >= errors_before + 3.0,
        "each uncounted request is counted as a store error"
    );
    // Redis is back: the budget it kept (spent) applies again.
    proxy.restore();
    integration_tests::wait_until("Redis to count again", || async {
        patch().await.status == StatusCode::TOO_MANY_REQUESTS
    })
    .await;
}

/// The command API's `eventra_rate_limit_store_errors_total`.
async fn store_errors(app: &TestApp) -> f64 {
    let text = app.metrics(&app.address).await;
    text.lines()
        .filter(|l| {
            l.starts_with("eventra_rate_limit_store_errors_total{")
                && l.contains("service=\"command-api\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn tenants_past_the_label_cap_are_counted_as_other() {
    let app = TestApp::spawn_with(|s| s.traffic.max_tenant_labels = 1).await;
    let first = app.sign_up_tenant("Labelled").await;
    let second = app.sign_up_tenant("Unlabelled").await;
    for token in [&first.admin_token, &second.admin_token] {
        let answer = app.update_me(token, json!({"locale": "en"})).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let text = app.metrics(&app.address).await;
    let first_label = format!("tenant=\"{}\"", first.tenant_id);
    assert!(
        text.lines()
            .any(|l| l.starts_with("eventra_http_requests_total{")
                && l.contains("route=\"/v1/me\"")
                && l.contains(&first_label)),
        "the first tenant keeps its label"
    );
    assert!(
        !text.contains(&second.tenant_id.to_string()),
        "a tenant past the cap is never a label"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("eventra_http_requests_total{")
                && l.contains("route=\"/v1/me\"")
                && l.contains("tenant=\"other\"")),
        "it is counted as other"
    );
}

#[tokio::test]
async fn the_query_api_limits_each_tenant_too() {
    let app = TestApp::spawn_with(|s| s.traffic.standard_per_hour = 2).await;
    let tenant = app.sign_up_tenant("Reader").await;
    let other = app.sign_up_tenant("OtherReader").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.query("/v1/me", Some(&tenant.admin_token), None).await);
    }
    assert_ne!(statuses[0].status, StatusCode::TOO_MANY_REQUESTS);
    assert_ne!(statuses[1].status, StatusCode::TOO_MANY_REQUESTS);
    let refused = &statuses[2];
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.body
    );
    assert!(refused.is_problem());
    assert!(header(refused, "retry-after").is_some_and(|s| s > 0));
    assert_eq!(header(refused, "x-ratelimit-remaining"), Some(0));
    // Another tenant's budget is its own.
    let answer = app.query("/v1/me", Some(&other.admin_token), None).await;
    assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&answer, "x-ratelimit-limit"), Some(2));
}

/// One member — or a stranger who signed up into an open tenant — cannot use up the
/// tenant's budget: a member spends at most their share of it, and is refused alone once it
/// is spent; the tenant's admin (and its other members) keep working.
#[tokio::test]
async fn a_member_spends_only_their_share_of_the_tenants_budget() {
    let app = TestApp::spawn_with(|s| {
        s.traffic.standard_per_hour = 20;
        s.traffic.member_share_percent = 25;
    })
    .await;
    let tenant = app.sign_up_tenant("Shared").await;
    let stranger = app.sign_up_user(tenant.tenant_id, "Stranger").await;
    let colleague = app.sign_up_user(tenant.tenant_id, "Colleague").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let answer = app
            .update_me(&stranger.token, json!({"locale": "en"}))
            .await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let refused = app
        .update_me(&stranger.token, json!({"locale": "de"}))
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "x-ratelimit-limit"), Some(5));
    // The member's refusals did not spend the tenant's budget: 20 - 5 left for the rest.
    let admin = app
        .update_me(&tenant.admin_token, json!({"locale": "en"}))
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{:?}", admin.body);
    assert_eq!(header(&admin, "x-ratelimit-limit"), Some(20));
    assert_eq!(header(&admin, "x-ratelimit-remaining"), Some(14));
    let other = app
        .update_me(&colleague.token, json!({"locale": "en"}))
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another member has their own share"
    );
    assert_eq!(header(&other, "x-ratelimit-remaining"), Some(4));
}

/// A signup into no tenant (404, nothing written) from the client `forwarded` names.
async fn signup(app: &TestApp, forwarded: &str) -> integration_tests::Answer {
    let tenant = Uuid::now_v7();
    app.send(
        app.http
            .post(format!("{}/v1/tenants/{tenant}/users", app.address))
            .header("X-Forwarded-For", forwarded.to_owned())
            .json(
                &json!({"email": "nobody@example.com", "password": PASSWORD, "display_name": "N"}),
            ),
    )
    .await
}

/// `X-Forwarded-For` names the client only when a trusted proxy sends it: from anyone else
/// it is ignored (a client cannot invent a fresh address per request to escape its limit);
/// from the proxy each client has its own budget, and an IPv6 client's whole /64 shares one.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies_and_ipv6_by_its_64() {
    let untrusted = TestApp::spawn_with(|s| s.traffic.anonymous_per_hour = 3).await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        statuses.push(
            signup(&untrusted, &format!("203.0.113.{n}"))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [404, 404, 404, 429],
        "spoofed addresses share the peer's budget"
    );

    let proxied = TestApp::spawn_with(|s| {
        s.traffic.anonymous_per_hour = 2;
        s.traffic.trusted_proxies =
            api_common::client_address::TrustedProxies::parse("127.0.0.1").expect("list");
    })
    .await;
    let mut statuses = Vec::new();
    for forwarded in [
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8:1:2::1",
        "2001:db8:1:2::ffff",
        "2001:db8:1:2:aaaa::9",
        "2001:db8:1:3::1",
    ] {
        statuses.push(signup(&proxied, forwarded).await.status.as_u16());
    }
    assert_eq!(
        statuses,
        [404, 404, 429, 404, 404, 404, 429, 404],
        "each forwarded client its own budget; one /64 one budget"
    );
}
