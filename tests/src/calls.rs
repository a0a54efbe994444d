//! The command API's calls by name, for tests that make them as a client would: each is one
//! request, answered as it came, so a test still asserts the status it expects.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Answer, TestApp};

impl TestApp {
    /// `PATCH /v1/me`.
    pub async fn update_me(&self, token: &str, body: Value) -> Answer {
        self.patch("/v1/me", Some(token), body).await
    }

    /// `PATCH /v1/tenants/{tenant_id}/users/{user_id}`.
    pub async fn manage_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        token: &str,
        body: Value,
    ) -> Answer {
        let path = format!("/v1/tenants/{tenant_id}/users/{user_id}");
        self.patch(&path, Some(token), body).await
    }

    /// `DELETE /v1/tenants/{tenant_id}/users/{user_id}?mode=erase` (GDPR erasure now).
    pub async fn erase_user(&self, tenant_id: Uuid, user_id: Uuid, token: &str) -> Answer {
        let path = format!("/v1/tenants/{tenant_id}/users/{user_id}?mode=erase");
        self.delete(&path, Some(token)).await
    }

    /// `POST /v1/sessions/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        let body = json!({ "refresh_token": refresh_token });
        self.post("/v1/sessions/refresh", None, body).await
    }

    /// `DELETE /v1/sessions/{session_id}`.
    pub async fn revoke_session(&self, session_id: Uuid, token: &str) -> Answer {
        self.delete(&format!("/v1/sessions/{session_id}"), Some(token))
            .await
    }
}

impl crate::Pipeline {
    /// Waits until the user has exactly one email job of `template` (what the email
    /// projection made of an event).
    pub async fn wait_for_one_email_job(&self, user_id: Uuid, template: &str) {
        crate::wait_until(&format!("one {template} email job"), || async {
            let client = self.pool.get().await.expect("connection");
            client
                .query_one(
                    "SELECT count(*) FROM email_jobs WHERE user_id = $1 AND template = $2",
                    &[&user_id, &template],
                )
                .await
                .expect("jobs")
                .get::<_, i64>(0)
                == 1
        })
        .await;
    }
}
