//! Access tokens are signed with Ed25519 keys whose public halves are published (ADR 0029):
//! another service verifies them with an ordinary JWT library and the JWKS, a key rotated
//! out verifies the tokens it signed until they expire and then leaves the JWKS, and a
//! revoked key's tokens are refused at once by every instance.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use integration_tests::{PASSWORD, TestApp, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn jwks(app: &TestApp, base: &str) -> Value {
    let answer = app
        .send(app.http.get(format!("{base}/.well-known/jwks.json")))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["content-type"].to_str().expect("ascii"),
        "application/jwk-set+json"
    );
    answer.body
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The kid a token's header names.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT")
        .kid
        .expect("a kid")
}

/// Whether the token is accepted by the command API at `base` (a harmless rename) and by the
/// query API (no projector runs here: an accepted token reads "not available yet").
async fn accepted(app: &TestApp, base: &str, token: &str) -> (bool, bool) {
    let command = app
        .send(
            app.http
                .patch(format!("{base}/v1/me"))
                .bearer_auth(token)
                .json(&json!({"display_name": "Admin"})),
        )
        .await;
    let query = app.query("/v1/me", Some(token), None).await;
    assert!(
        command.status == StatusCode::OK || command.status == StatusCode::UNAUTHORIZED,
        "{command:?}"
    );
    assert!(
        query.status == StatusCode::NOT_FOUND || query.status == StatusCode::UNAUTHORIZED,
        "{query:?}"
    );
    (
        command.status == StatusCode::OK,
        query.status == StatusCode::NOT_FOUND,
    )
}

/// The verification another service would write, with PyJWT (not this project's code): the
/// key named by the token's `kid`, from the JWKS, EdDSA only, our issuer and audience.
const PYJWT_VERIFY: &str = r#"
import json, sys, jwt
jwks = jwt.PyJWKSet.from_dict(json.load(open(sys.argv[1])))
token = sys.argv[2]
kid = jwt.get_unverified_header(token)["kid"]
claims = jwt.decode(token, jwks[kid].key, algorithms=["EdDSA"], audience="eventra-api", issuer="eventra")
print(json.dumps(claims))
"#;

/// The Python with PyJWT: `EVENTRA_PYTHON` (set by `./scripts/test`), else the venv the
/// scripts install it into.
fn python() -> String {
    std::env::var("EVENTRA_PYTHON").unwrap_or_else(|_| {
        std::env::var("HOME")
            .map(|home| format!("{home}/.cache/eventra/venv/bin/python"))
            .ok()
            .filter(|path| std::path::Path::new(path).exists())
            .unwrap_or_else(|| "python3".into())
    })
}

/// PyJWT's verdict on `token` with `jwks`: the claims, or its error.
fn pyjwt(jwks: &Value, token: &str) -> Result<Value, String> {
    let dir = integration_tests::TempDir::new("eventra-jwks");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks.to_string()).expect("write the JWKS");
    let output = Command::new(python())
        .args(["-c", PYJWT_VERIFY])
        .arg(&path)
        .arg(token)
        .output()
        .expect("run python3 (scripts/test installs PyJWT into its venv: EVENTRA_PYTHON)");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("claims"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test]
async fn another_service_verifies_our_tokens_with_the_jwks_and_an_ordinary_jwt_library() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Verified").await;
    let keys = jwks(&app, &app.address).await;
    let published = keys["keys"].as_array().expect("keys");
    assert_eq!(published.len(), 1, "{keys}");
    let key = &published[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "never the private part: {key}");
    assert_eq!(key["kid"].as_str(), Some(app.signing_key().kid()));
    assert_eq!(kid_of(&tenant.admin_token), app.signing_key().kid());

    let claims = pyjwt(&keys, &tenant.admin_token).expect("PyJWT verifies the token");
    assert_eq!(claims["sub"], tenant.admin_id.to_string());
    assert_eq!(claims["tid"], tenant.tenant_id.to_string());

    // A changed claim breaks the signature for PyJWT too.
    let mut parts: Vec<String> = tenant.admin_token.split('.').map(str::to_owned).collect();
    let forged_claims = json!({"iss": "eventra", "aud": "eventra-api", "sub": uuid::Uuid::new_v4(),
        "tid": tenant.tenant_id, "sid": uuid::Uuid::new_v4(), "role": "admin",
        "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 600});
    parts[1] = base64url(forged_claims.to_string().as_bytes());
    let error = pyjwt(&keys, &parts.join(".")).expect_err("a forged token");
    assert!(error.contains("InvalidSignatureError"), "{error}");
    // And so does a token signed by a key that is not in the JWKS.
    let stranger = infra::tokens::SigningKey::generate().expect("a key");
    let error = pyjwt(
        &keys,
        &stranger
            .sign(stranger.kid(), &forged_claims)
            .expect("signed"),
    )
    .expect_err("an unknown key");
    assert!(error.contains("KeyError"), "{error}");
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_rotated_out_key_verifies_its_tokens_until_they_expire_and_then_leaves_the_jwks() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Rotating").await;
    let old_kid = app.signing_key().kid().to_owned();

    // Rotation: a new instance starts with a new key, next to the old one.
    let new_key = infra::crypto::MasterKey::generate()
        .expect("rng")
        .to_base64();
    let new_kid = infra::tokens::SigningKey::parse(&new_key)
        .expect("key")
        .kid()
        .to_owned();
    let rotated = app
        .spawn_command_api(|settings| {
            settings.signing_key = Some(infra::Secret::new(new_key.clone()));
        })
        .await;
    let login = app
        .send(
            app.http
                .post(format!(
                    "{rotated}/v1/tenants/{}/sessions",
                    tenant.tenant_id
                ))
                .json(&json!({"email": tenant.admin_email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{login:?}");
    let new_token = login.str("access_token");
    assert_eq!(kid_of(&new_token), new_kid);

    // Both keys are published by both instances; every instance takes both keys' tokens,
    // the old instance and the query API learning the new key when they first meet it.
    for base in [&app.address, &rotated] {
        let mut published = kids(&jwks(&app, base).await);
        published.sort();
        let mut expected = vec![old_kid.clone(), new_kid.clone()];
        expected.sort();
        assert_eq!(published, expected, "{base}");
    }
    for base in [&app.address, &rotated] {
        assert_eq!(
            accepted(&app, base, &new_token).await,
            (true, true),
            "{base}"
        );
        assert_eq!(
            accepted(&app, base, &tenant.admin_token).await,
            (true, true),
            "{base}"
        );
    }

    // A key whose instance stops: it was registered for its tokens' lifetime (2 s) plus three
    // heartbeats (0.2 s each), and nobody extends it once its signer is gone.
    let short = infra::tokens::SigningKey::generate().expect("a key");
    let short_kid = short.kid().to_owned();
    let pool = infra::db::pool(&app.database_url, 2).expect("pool");
    let signer = infra::tokens::Signer::register(
        pool.clone(),
        short.clone(),
        chrono::Duration::seconds(2),
        Duration::from_millis(200),
    )
    .await
    .expect("register");
    let keys = infra::tokens::KeySet::load(pool).await.expect("keys");
    let tokens = infra::tokens::Tokens::issuing(
        signer,
        keys,
        chrono::Duration::seconds(2),
        chrono::Duration::hours(1),
    );
    let session_token = tenant.admin_token.clone();
    let session_id = jsonwebtoken::dangerous::insecure_decode::<Value>(&session_token)
        .expect("claims")
        .claims["sid"]
        .as_str()
        .expect("sid")
        .parse::<uuid::Uuid>()
        .expect("uuid");
    let short_lived = tokens
        .issue_access_token(
            tenant.admin_id,
            tenant.tenant_id,
            session_id,
            domain::Role::Admin,
            Utc::now(),
        )
        .expect("a token");
    // One its holder forged to outlive the key: the signature is good, the key is not.
    let outliving = short
        .sign(
            &short_kid,
            &json!({"iss": "eventra", "aud": "eventra-api", "sub": tenant.admin_id,
                    "tid": tenant.tenant_id, "sid": session_id, "role": "admin",
                    "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 3600}),
        )
        .expect("signed");
    drop(tokens);
    for base in [&app.address, &rotated] {
        assert_eq!(
            accepted(&app, base, &short_lived).await,
            (true, true),
            "before expiry"
        );
        assert_eq!(
            accepted(&app, base, &outliving).await,
            (true, true),
            "key still live"
        );
        assert!(kids(&jwks(&app, base).await).contains(&short_kid));
    }
    tokio::time::sleep(Duration::from_millis(2_700)).await;
    for base in [&app.address, &rotated] {
        assert_eq!(
            accepted(&app, base, &short_lived).await,
            (false, false),
            "after expiry"
        );
        assert_eq!(
            accepted(&app, base, &outliving).await,
            (false, false),
            "key lapsed"
        );
        assert!(
            !kids(&jwks(&app, base).await).contains(&short_kid),
            "{base}"
        );
        // The live keys are untouched.
        assert_eq!(
            accepted(&app, base, &new_token).await,
            (true, true),
            "{base}"
        );
    }
}

/// `projector token-keys …` against the app's database, as an operator runs it.
fn token_keys(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(crate::cli::binary("projector"))
        .arg("token-keys")
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env(
            "EVENTRA_MASTER_KEY",
            app.settings.master_key.as_ref().expect("key").expose(),
        )
        .env("EVENTRA_DATA_DIR", &app.settings.data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the projector CLI")
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_by_every_instance_and_signs_nothing_more() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Revoking").await;
    let other_key = infra::crypto::MasterKey::generate()
        .expect("rng")
        .to_base64();
    let other = app
        .spawn_command_api(|settings| {
            settings.signing_key = Some(infra::Secret::new(other_key.clone()));
        })
        .await;
    let kid = app.signing_key().kid().to_owned();
    assert_eq!(
        accepted(&app, &other, &tenant.admin_token).await,
        (true, true)
    );

    let output = token_keys(&app, &["revoke", &kid]);
    assert!(output.status.success(), "{output:?}");

    // Announced: every instance stops trusting it without waiting for a refresh.
    let (app_ref, other_ref, kid_ref, token) = (&app, &other, &kid, &tenant.admin_token);
    wait_until(
        "every instance refuses the revoked key's token",
        || async move {
            let mut refused = true;
            for base in [&app_ref.address, other_ref] {
                refused &= accepted(app_ref, base, token).await == (false, false);
                refused &= !kids(&jwks(app_ref, base).await).contains(kid_ref);
            }
            refused
        },
    )
    .await;
    // The instance configured with it signs nothing more; the other one still does.
    let login = app
        .log_in(tenant.tenant_id, &tenant.admin_email, PASSWORD)
        .await;
    assert!(login.status.is_server_error(), "{login:?}");
    assert!(login.is_problem());
    let login = app
        .send(
            app.http
                .post(format!("{other}/v1/tenants/{}/sessions", tenant.tenant_id))
                .json(&json!({"email": tenant.admin_email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{login:?}");
    assert_eq!(
        accepted(&app, &app.address, &login.str("access_token")).await,
        (true, true)
    );

    // The CLI lists it as revoked; revoking it again is refused.
    let list = token_keys(&app, &["list"]);
    let rows: Vec<Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let revoked = rows.iter().find(|row| row["kid"] == kid).expect("listed");
    assert!(revoked["retired_at"].is_string(), "{revoked}");
    assert!(!token_keys(&app, &["revoke", &kid]).status.success());
}
