//! The system under test over HTTP: signups, logins, and the helpers that read answers.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::load::Outcome;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Api {
    pub http: reqwest::Client,
    pub command: String,
    pub query: String,
}

impl Api {
    /// `PATCH /v1/me` switching the locale (`en` for even `n`, `de` for odd): the status.
    pub async fn patch_locale(&self, token: &str, n: u64) -> Outcome {
        let locale = if n.is_multiple_of(2) { "en" } else { "de" };
        status_of(
            self.http
                .patch(format!("{}/v1/me", self.command))
                .bearer_auth(token)
                .json(&json!({"locale": locale}))
                .send()
                .await,
        )
    }

    /// `PATCH /v1/me` with `body`: the status, and the position of what it appended (none
    /// for a failure).
    pub async fn patch_me(&self, token: &str, body: Value) -> (u16, Option<i64>) {
        let answer = self
            .http
            .patch(format!("{}/v1/me", self.command))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        let Ok(answer) = answer else {
            return (0, None);
        };
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        (status, body["position"].as_i64())
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.command))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub async fn sign_up(&self, tenant_id: Uuid, n: usize) -> anyhow::Result<(Uuid, String)> {
        let email = format!("writer-{n}-{}@bench.example.com", Uuid::new_v4().simple());
        let (status, body) = self
            .post(
                &format!("/v1/tenants/{tenant_id}/users"),
                None,
                json!({"email": email, "password": PASSWORD, "display_name": format!("Writer {n}")}),
            )
            .await?;
        if status != 201 {
            bail!("signup answered {status}: {body}");
        }
        Ok((uuid_of(&body, "user_id")?, email))
    }

    pub async fn log_in(&self, tenant_id: Uuid, email: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .post(
                &format!("/v1/tenants/{tenant_id}/sessions"),
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await?;
        if status != 201 {
            bail!("login answered {status}: {body}");
        }
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }
}

pub fn uuid_of(body: &Value, field: &str) -> anyhow::Result<Uuid> {
    body[field]
        .as_str()
        .and_then(|v| Uuid::try_parse(v).ok())
        .with_context(|| format!("no {field} in {body}"))
}

pub fn status_of(result: reqwest::Result<reqwest::Response>) -> Outcome {
    result.map_or(0, |r| r.status().as_u16())
}

pub fn is(status: u16) -> fn(Outcome) -> bool {
    match status {
        200 => |o| o == 200,
        201 => |o| o == 201,
        _ => |o| (200..300).contains(&o),
    }
}
