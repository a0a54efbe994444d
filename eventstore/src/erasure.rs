//! Crypto-shredding (ADR 3): destroying a subject's data key, and what must happen in the
//! same transaction (the deletion confirmation queued while the address can still be read).

use uuid::Uuid;

use crate::error::StoreError;
use crate::unit::Transaction;

impl Transaction {
    /// Destroys the subject's data key and releases their reserved unique values, so
    /// nothing personal about them can be read or matched again.
    #[tracing::instrument(skip(self))]
    pub async fn erase_subject(&self, tenant_id: Uuid, subject_id: Uuid) -> Result<(), StoreError> {
        // Nothing personal stays in memory either (a later load folds the erasure anew).
        self.shared.kept.forget(subject_id);
        self.forget_pending(subject_id);
        self.shared.opened.lock().remove(&subject_id);
        let client = self.client();
        client
            .execute(
                "DELETE FROM data_keys WHERE subject_id = $1",
                &[&subject_id],
            )
            .await?;
        client
            .execute(
                "INSERT INTO erased_subjects (subject_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&subject_id, &tenant_id],
            )
            .await?;
        client
            .execute(
                "DELETE FROM unique_reservations WHERE owner_id = $1",
                &[&subject_id],
            )
            .await?;
        // Links on their way to the person's mailbox open nothing of theirs any more.
        client
            .execute(
                "DELETE FROM email_secrets WHERE aggregate_id = $1",
                &[&subject_id],
            )
            .await?;
        // Remembered answers about them (a profile, an address) go too.
        client
            .execute(
                "DELETE FROM idempotency_keys WHERE subjects @> ARRAY[$1]::uuid[]",
                &[&subject_id],
            )
            .await?;
        infra::email_jobs::forget_recipient(client, subject_id).await?;
        // Every other process forgets what it keeps of them once this commits.
        client
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&crate::forget::ERASURES_CHANNEL, &subject_id.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Queues an email in this transaction (the deletion confirmation, which must capture
    /// the address before the key that opens it is destroyed).
    pub async fn queue_email(
        &self,
        job: &infra::email_jobs::NewJob,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(infra::email_jobs::enqueue(self.client(), job).await?)
    }

    /// Keeps an emailed link's token, sealed, until its email is sent (ADR 0015).
    pub async fn keep_email_secret(
        &self,
        secret: &infra::email_jobs::EmailSecret<'_>,
    ) -> Result<(), StoreError> {
        infra::email_jobs::keep_secret(self.client(), &self.shared.keys, secret)
            .await
            .map_err(|error| StoreError::Corrupt(format!("{error:#}")))
    }

    /// Keeps a webhook's signing secret of `version`, sealed (ADR 0028); older versions go.
    pub async fn keep_webhook_secret(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        version: u32,
        key: &infra::webhooks::SigningKey,
    ) -> Result<(), StoreError> {
        infra::webhooks::keep_secret(
            self.client(),
            &self.shared.keys,
            tenant_id,
            webhook_id,
            version,
            key,
        )
        .await
        .map_err(|error| StoreError::Corrupt(format!("{error:#}")))
    }

    /// Keeps several links' tokens at once, sealed.
    pub async fn keep_email_secrets(
        &self,
        secrets: &[infra::email_jobs::EmailSecret<'_>],
    ) -> Result<(), StoreError> {
        infra::email_jobs::keep_secrets(self.client(), &self.shared.keys, secrets)
            .await
            .map_err(|error| StoreError::Corrupt(format!("{error:#}")))
    }

    /// Forgets the kept tokens of an aggregate's link that was replaced, used or closed.
    pub async fn forget_email_secrets(
        &self,
        aggregate_id: Uuid,
        purpose: infra::email_jobs::LinkPurpose,
    ) -> Result<(), StoreError> {
        infra::email_jobs::forget_secrets_of(self.client(), aggregate_id, purpose).await?;
        Ok(())
    }

    /// Queues the deletion confirmation of `user` (as loaded before the erasure), in the
    /// erasure's transaction: the last moment the address can be read. The job gives the
    /// address up once it is finished.
    pub async fn queue_deletion_confirmation(
        &self,
        tenant_id: Uuid,
        user: &domain::User,
        now: chrono::DateTime<chrono::Utc>,
        appended: &[crate::AppendedEvent],
    ) -> Result<(), StoreError> {
        let deleted = appended
            .iter()
            .rev()
            .find(|event| Some(event.aggregate_id) == user.user_id);
        let (Some(user_id), Some(deleted)) = (user.user_id, deleted) else {
            return Ok(());
        };
        let tenant = self.reader().load::<domain::Tenant>(tenant_id).await?;
        self.queue_email(&infra::email_jobs::NewJob {
            tenant_id,
            user_id,
            event_id: deleted.event_id,
            position: deleted.position,
            template: infra::email_jobs::Template::AccountDeleted,
            recipient: user.email.clone(),
            variables: serde_json::json!({
                "display_name": user.display_name,
                "tenant_name": tenant.state.name,
                "locale": user.locale,
            }),
            due_at: now,
        })
        .await?;
        Ok(())
    }
}
