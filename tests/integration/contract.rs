//! The event contract for subscribers, black-box: the command API serves every event type's
//! schema, and the public form of every event a real scenario stored — signup, login,
//! profile, team, invitation, password change, erasure — is a CloudEvent whose data
//! validates against the served schema, without internal fields, and without the erased
//! person's personal fields.

use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const BASE: &str = "https://api.example";

#[tokio::test]
async fn the_schemas_are_served_and_every_stored_events_public_form_validates_against_them() {
    let app = TestApp::spawn().await;
    let list = app
        .send(app.http.get(format!("{}/v1/schemas/events", app.address)))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.body["items"].as_array().expect("items").clone();
    assert!(items.len() >= 40, "{} schemas", items.len());
    for item in &items {
        let url = item["url"].as_str().expect("url");
        let one = app
            .http
            .get(format!("{}{url}", app.address))
            .send()
            .await
            .expect("a schema");
        assert_eq!(one.status(), StatusCode::OK, "{url}");
        assert_eq!(
            one.headers()["content-type"].to_str().ok(),
            Some("application/schema+json"),
            "{url}"
        );
        let schema: Value = one.json().await.expect("json");
        assert_eq!(schema, item["schema"], "{url}");
    }
    for missing in [
        "/v1/schemas/events/user.created/2",
        "/v1/schemas/events/user.nothing/1",
        "/v1/schemas/events/user.created/one",
    ] {
        let answer = app
            .send(app.http.get(format!("{}{missing}", app.address)))
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
        assert!(answer.is_problem(), "{missing}");
    }

    // A scenario that stores events of many types, personal data among them.
    let tenant = app.sign_up_tenant("Contract").await;
    let ada = app.sign_up_user(tenant.tenant_id, "Ada Contract").await;
    let erased = app.sign_up_user(tenant.tenant_id, "Erin Contract").await;
    assert_eq!(
        app.update_me(
            &ada.token,
            json!({"display_name": "Ada C.", "phone": "+4915112345678"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.update_me(&erased.token, json!({"phone": "+4915187654321"}))
            .await
            .status,
        StatusCode::OK
    );
    let password = app
        .post(
            "/v1/me/password",
            Some(&ada.token),
            json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
        )
        .await;
    assert_eq!(password.status, StatusCode::OK, "{:?}", password.body);
    let team = app
        .post(
            &format!("/v1/tenants/{}/teams", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"name": "Contractors"}),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED);
    let invitation = app
        .post(
            &format!("/v1/tenants/{}/invitations", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"email": "invited@contract.example"}),
        )
        .await;
    assert_eq!(invitation.status, StatusCode::CREATED);
    assert_eq!(
        app.erase(&tenant, erased.user_id).await.status,
        StatusCode::OK
    );

    let schemas: std::collections::HashMap<(String, i64), jsonschema::Validator> = items
        .iter()
        .map(|item| {
            let validator = jsonschema::draft202012::new(&item["schema"]).expect("a valid schema");
            (
                (
                    item["type"].as_str().unwrap_or_default().to_owned(),
                    item["version"].as_i64().unwrap_or_default(),
                ),
                validator,
            )
        })
        .collect();
    let streams = app
        .db
        .query(
            "SELECT DISTINCT aggregate_type, aggregate_id FROM events WHERE tenant_id = $1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("streams");
    let mut seen = std::collections::BTreeSet::new();
    for row in streams {
        let (aggregate_type, aggregate_id): (String, Uuid) = (row.get(0), row.get(1));
        for event in app.decrypted_stream(&aggregate_type, aggregate_id).await {
            let document = eventstore::public::cloud_event(&event, BASE);
            assert_eq!(document["specversion"], "1.0");
            assert_eq!(document["id"], json!(event.event_id));
            assert_eq!(document["type"], json!(event.event_type));
            assert_eq!(
                document["source"],
                json!(format!("/tenants/{}", tenant.tenant_id))
            );
            assert_eq!(
                document["subject"],
                json!(format!("{aggregate_type}/{aggregate_id}"))
            );
            assert_eq!(
                document["dataschema"],
                json!(format!(
                    "{BASE}/v1/schemas/events/{}/{}",
                    event.event_type, event.schema_version
                ))
            );
            assert_eq!(document["position"], json!(event.position));
            assert_eq!(document["tenantid"], json!(tenant.tenant_id));
            assert!(document["time"].as_str().is_some_and(|t| t.ends_with('Z')));
            let validator = &schemas[&(event.event_type.clone(), i64::from(event.schema_version))];
            let data = &document["data"];
            let errors: Vec<String> = validator.iter_errors(data).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{}: {data}: {errors:?}",
                event.event_type
            );
            let text = document.to_string();
            for internal in [
                "$argon2",
                "password_hash",
                "token_hash",
                "pii:v1:",
                "[erased]",
            ] {
                assert!(!text.contains(internal), "{}: {text}", event.event_type);
            }
            if event.metadata.data_subject == Some(erased.user_id) {
                for value in [&erased.email, "Erin Contract", "+4915187654321"] {
                    assert!(!text.contains(value), "the erased person in {text}");
                }
            }
            seen.insert(event.event_type.clone());
        }
    }
    for expected in [
        "tenant.created",
        "user.created",
        "user.logged_in",
        "user.profile_updated",
        "user.password_changed",
        "team.created",
        "invitation.created",
        "user.deleted",
    ] {
        assert!(seen.contains(expected), "{expected} not in {seen:?}");
    }
    // Ada's personal data is there in plaintext for the tenant's own subscribers.
    let ada_created = app
        .decrypted_stream("user", ada.user_id)
        .await
        .into_iter()
        .find(|e| e.event_type == "user.created")
        .expect("ada's creation");
    let document = eventstore::public::cloud_event(&ada_created, BASE);
    assert_eq!(document["data"]["email"], json!(ada.email));
    assert_eq!(document["data"]["display_name"], "Ada Contract");
}

/// The AsyncAPI 3.0 JSON Schema: `ASYNCAPI_SCHEMA`, or where `scripts/test` installs it.
fn asyncapi_schema() -> std::path::PathBuf {
    std::env::var("ASYNCAPI_SCHEMA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(
                ".cache/eventra/npm/node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json",
            )
        })
}

#[tokio::test]
async fn the_asyncapi_document_is_valid_asyncapi_3_and_describes_every_delivered_event() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(app.http.get(format!("{}/asyncapi.json", app.address)))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.body;
    assert_eq!(document["asyncapi"], "3.0.0");
    // Valid against the AsyncAPI project's own schema of the 3.0 specification.
    let file = std::env::temp_dir().join(format!("asyncapi-{}.json", Uuid::new_v4()));
    std::fs::write(&file, document.to_string()).expect("write the document");
    let schema = asyncapi_schema();
    assert!(
        schema.exists(),
        "{} is missing: scripts/test installs @asyncapi/specs",
        schema.display()
    );
    let output =
        std::process::Command::new(crate::deploy::tool("check-jsonschema", "CHECK_JSONSCHEMA"))
            .arg("--schemafile")
            .arg(&schema)
            .arg(&file)
            .output()
            .expect("check-jsonschema runs (scripts/test installs it)");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the AsyncAPI document is not valid AsyncAPI 3.0: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A message per event type, each with the three signature headers.
    let schemas = app
        .send(app.http.get(format!("{}/v1/schemas/events", app.address)))
        .await;
    // The list holds retired versions too; messages are of the current ones.
    let types: std::collections::BTreeSet<String> = schemas.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["type"].as_str().map(str::to_owned))
        .collect();
    let messages = document["components"]["messages"]
        .as_object()
        .expect("messages");
    assert_eq!(messages.len(), types.len());
    for event_type in &types {
        assert!(
            document["channels"]["webhook"]["messages"][event_type].is_object(),
            "{event_type} is not on the webhook channel"
        );
    }
    let headers = &document["components"]["schemas"]["WebhookHeaders"];
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(headers["properties"][header].is_object(), "{header}");
    }
    // Each stored event's CloudEvent matches its message's payload schema.
    let tenant = app.sign_up_tenant("Described").await;
    let user = app.sign_up_user(tenant.tenant_id, "Described User").await;
    for event in app.decrypted_stream("user", user.user_id).await {
        let cloud_event = eventstore::public::cloud_event(&event, BASE);
        let payload = &messages[&event.event_type]["payload"]["schema"];
        let validator = jsonschema::draft202012::new(payload).expect("a valid payload schema");
        let errors: Vec<String> = validator
            .iter_errors(&cloud_event)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", event.event_type);
    }
}
