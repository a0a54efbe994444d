use integration_tests::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

/// Every route each API serves, as `(method, path)`.
const COMMAND_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("post", "/v1/tenants"),
    ("get", "/v1/schemas/events"),
    ("get", "/asyncapi.json"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/v1/tenants/{tenant_id}/webhooks"),
    ("patch", "/v1/tenants/{tenant_id}/webhooks/{webhook_id}"),
    ("delete", "/v1/tenants/{tenant_id}/webhooks/{webhook_id}"),
    (
        "post",
        "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret",
    ),
    (
        "post",
        "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    ),
    ("get", "/v1/schemas/events/{event_type}/{version}"),
    ("patch", "/v1/tenants/{tenant_id}"),
    ("post", "/v1/tenants/{tenant_id}/users"),
    ("post", "/v1/tenants/{tenant_id}/sessions"),
    ("post", "/v1/sessions/refresh"),
    ("delete", "/v1/sessions/{session_id}"),
    ("patch", "/v1/me"),
    ("patch", "/v1/tenants/{tenant_id}/users/{user_id}"),
    ("delete", "/v1/tenants/{tenant_id}/users/{user_id}"),
    ("delete", "/v1/tenants/{tenant_id}/members/{user_id}"),
    ("post", "/v1/me/leave"),
    ("post", "/v1/tenants/{tenant_id}/invitations"),
    (
        "post",
        "/v1/tenants/{tenant_id}/invitations/{invitation_id}/resend",
    ),
    (
        "delete",
        "/v1/tenants/{tenant_id}/invitations/{invitation_id}",
    ),
    ("post", "/v1/invitations/accept"),
    ("post", "/v1/tenants/{tenant_id}/users/{user_id}/restore"),
    ("delete", "/v1/me"),
    ("post", "/v1/me/deactivate"),
    ("delete", "/v1/me/sessions"),
    ("post", "/v1/me/password"),
    ("post", "/v1/me/email"),
    ("post", "/v1/tenants/{tenant_id}/password-resets"),
    ("post", "/v1/password-resets/confirm"),
    ("post", "/v1/email-verifications/confirm"),
    ("post", "/v1/tenants/{tenant_id}/imports"),
    ("delete", "/v1/tenants/{tenant_id}/imports/{import_id}"),
    ("post", "/v1/tenants/{tenant_id}/teams"),
    ("patch", "/v1/tenants/{tenant_id}/teams/{team_id}"),
    ("delete", "/v1/tenants/{tenant_id}/teams/{team_id}"),
    ("post", "/v1/tenants/{tenant_id}/teams/{team_id}/members"),
    (
        "delete",
        "/v1/tenants/{tenant_id}/teams/{team_id}/members/{user_id}",
    ),
];

const QUERY_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/v1/me"),
    ("get", "/v1/tenants/{tenant_id}"),
    ("get", "/v1/tenants/{tenant_id}/users"),
    ("get", "/v1/tenants/{tenant_id}/users/{user_id}"),
    ("get", "/v1/tenants/{tenant_id}/activity"),
    ("get", "/v1/tenants/{tenant_id}/audit"),
    ("get", "/v1/tenants/{tenant_id}/email-jobs"),
    ("get", "/v1/projections"),
    ("get", "/v1/tenants/{tenant_id}/teams"),
    ("get", "/v1/tenants/{tenant_id}/teams/{team_id}"),
    ("get", "/v1/tenants/{tenant_id}/invitations"),
    ("get", "/v1/me/sessions"),
    ("get", "/v1/tenants/{tenant_id}/imports"),
    ("get", "/v1/tenants/{tenant_id}/imports/{import_id}"),
    ("get", "/v1/tenants/{tenant_id}/webhooks"),
    (
        "get",
        "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries",
    ),
];

async fn document(app: &TestApp, base: &str) -> Value {
    let answer = app.send(app.http.get(format!("{base}/openapi.json"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
            found.push((method.clone(), path.clone()));
        }
    }
    found.sort();
    found
}

/// Every `$ref` in the document names a schema it defines.
fn assert_references_resolve(document: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .expect("a schema reference");
                assert!(
                    document["components"]["schemas"][name].is_object(),
                    "{reference} is not defined"
                );
            }
            map.values()
                .for_each(|v| assert_references_resolve(document, v));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| assert_references_resolve(document, v)),
        _ => {}
    }
}

#[tokio::test]
async fn both_apis_document_exactly_the_routes_they_serve() {
    let app = TestApp::spawn().await;
    for (base, routes) in [
        (&app.address, COMMAND_ROUTES),
        (&app.query_address, QUERY_ROUTES),
    ] {
        let document = document(&app, base).await;
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
        assert!(document["info"]["title"].is_string());
        assert!(document["components"]["securitySchemes"]["bearer"].is_object());
        assert!(document["components"]["schemas"]["Problem"].is_object());
        assert_references_resolve(&document, &document);
        let mut expected: Vec<(String, String)> = routes
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        expected.sort();
        assert_eq!(operations(&document), expected, "{base}");
        // Every limited operation documents its 429 with Retry-After.
        for (method, path) in routes {
            let limited = !matches!(
                *path,
                "/health" | "/ready" | "/metrics" | "/asyncapi.json" | "/.well-known/jwks.json"
            ) && !path.starts_with("/v1/schemas/");
            let answer = &document["paths"][*path][*method]["responses"]["429"];
            assert_eq!(answer.is_object(), limited, "{method} {path}: {answer}");
            if limited {
                assert!(
                    answer["headers"]["Retry-After"].is_object(),
                    "{method} {path}"
                );
            }
        }
        // And the server answers each documented route (never "no such route").
        for (method, path) in routes {
            let concrete = path
                .replace("{tenant_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{user_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{session_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{import_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{webhook_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{delivery_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{event_type}", "user.created")
                .replace("{version}", "1");
            let request = app.http.request(
                method.to_uppercase().parse().expect("method"),
                format!("{base}{concrete}"),
            );
            let answer = app.send(request).await;
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert!(
                answer.status != StatusCode::NOT_FOUND
                    || answer.body["detail"] != "no such resource",
                "{method} {path} is not routed"
            );
        }
    }
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    for base in [&app.address, &app.query_address] {
        let redirect = app
            .http
            .get(format!("{base}/docs"))
            .send()
            .await
            .expect("docs");
        assert_eq!(
            redirect.status(),
            StatusCode::OK,
            "the /docs redirect leads to the page"
        );
        let page = redirect.text().await.expect("html");
        assert!(page.contains("swagger-ui"), "{page}");
        for script in ["swagger-ui-bundle.js", "swagger-initializer.js"] {
            let asset = app
                .http
                .get(format!("{base}/docs/{script}"))
                .send()
                .await
                .expect("asset");
            assert_eq!(asset.status(), StatusCode::OK, "{script}");
        }
        assert!(
            !page.contains("https://") && !page.contains("http://"),
            "the page loads nothing from elsewhere"
        );
        let initializer = app
            .http
            .get(format!("{base}/docs/swagger-initializer.js"))
            .send()
            .await
            .expect("initializer")
            .text()
            .await
            .expect("text");
        assert!(initializer.contains("/openapi.json"), "{initializer}");
    }
}

/// The command API describes each text field by its value type's rule, so a client
/// validating against the document accepts what the parser accepts, and the two cannot drift.
#[tokio::test]
async fn text_fields_are_described_by_their_value_types() {
    use domain::values::{
        DisplayName, Email, Locale, Password, Phone, TeamDescription, TeamName, TenantName,
        TextRule,
    };
    let app = TestApp::spawn().await;
    let document = document(&app, &app.address).await;
    let schemas = &document["components"]["schemas"];
    let fields: [(&str, &str, TextRule); 17] = [
        ("ResetRequestBody", "email", Email::RULE),
        ("ResetConfirmBody", "new_password", Password::RULE),
        ("EmailChangeBody", "new_email", Email::RULE),
        ("NewInvitationBody", "email", Email::RULE),
        ("AcceptBody", "password", Password::RULE),
        ("AcceptBody", "display_name", DisplayName::RULE),
        ("NewTeamBody", "name", TeamName::RULE),
        ("NewTeamBody", "description", TeamDescription::RULE),
        ("TeamChangesBody", "name", TeamName::RULE),
        ("TeamChangesBody", "description", TeamDescription::RULE),
        ("NewUserBody", "email", Email::RULE),
        ("NewUserBody", "password", Password::RULE),
        ("NewUserBody", "display_name", DisplayName::RULE),
        ("SignUpTenantBody", "name", TenantName::RULE),
        ("UpdateProfileBody", "display_name", DisplayName::RULE),
        ("UpdateProfileBody", "phone", Phone::RULE),
        ("UpdateProfileBody", "locale", Locale::RULE),
    ];
    for (schema, field, rule) in fields {
        let described = &schemas[schema]["properties"][field];
        assert!(described.is_object(), "{schema}.{field} is not documented");
        assert_eq!(
            described["pattern"].as_str(),
            rule.pattern,
            "{schema}.{field}"
        );
        assert_eq!(
            described["maxLength"].as_u64(),
            Some(rule.max_length as u64),
            "{schema}.{field}"
        );
        assert_eq!(
            described["minLength"].as_u64(),
            rule.min_length.map(|n| n as u64),
            "{schema}.{field}"
        );
        assert_eq!(described["examples"][0].as_str(), Some(rule.example));
        assert_eq!(
            described["format"].as_str() == Some("password"),
            rule.secret,
            "{schema}.{field}"
        );
    }
    let phone = &schemas["UpdateProfileBody"]["properties"]["phone"]["type"];
    assert!(
        phone
            .as_array()
            .is_some_and(|types| types.contains(&Value::from("null"))),
        "null clears the phone number: {phone}"
    );
    let required = &schemas["NewUserBody"]["required"];
    for field in ["email", "password", "display_name"] {
        assert!(
            required
                .as_array()
                .is_some_and(|r| r.contains(&Value::from(field))),
            "{field} is required in {required}"
        );
    }
    assert!(
        schemas["UpdateProfileBody"]["required"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "every profile field may be left out"
    );
}
