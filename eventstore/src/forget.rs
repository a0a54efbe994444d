//! What one process keeps of a subject (folded states, with their decrypted personal fields)
//! is forgotten when any process erases the subject: the erasure's transaction notifies
//! [`ERASURES_CHANNEL`] with the subject's id (delivered at commit), and every process that
//! runs [`EventStore::forget_erased`] drops what it keeps of them. A listener that lost its
//! connection may have missed an erasure: it forgets everything it keeps, then listens again.

use std::time::Duration;

use uuid::Uuid;

use crate::store::EventStore;

/// The channel erasures are announced on (payload: the subject's id).
pub const ERASURES_CHANNEL: &str = "eventra_erasures";

impl EventStore {
    /// Whether this process keeps a folded state of `subject_id` (operators and tests).
    pub fn keeps(&self, subject_id: Uuid) -> bool {
        self.kept().holds(subject_id)
    }

    /// Listens for erasures by any process and forgets what this process keeps of the erased,
    /// for as long as the task runs (reconnecting, and forgetting everything kept, when the
    /// connection is lost).
    pub async fn forget_erased(self, database_url: String) {
        let mut failures = 0u32;
        loop {
            match self.listen_for_erasures(&database_url).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(
                        %error,
                        "listening for erasures failed; everything kept is forgotten"
                    );
                }
            }
            self.kept().forget_everything();
            let delay = Duration::from_millis((200u64 << failures.min(5)).min(5_000));
            tokio::time::sleep(delay).await;
        }
    }

    async fn listen_for_erasures(&self, database_url: &str) -> Result<(), tokio_postgres::Error> {
        let mut listening = infra::db::listen(database_url, ERASURES_CHANNEL).await?;
        // Whatever was erased before this point may have been missed.
        self.kept().forget_everything();
        while let Some(payload) = listening.payloads.recv().await {
            match payload.parse::<Uuid>() {
                Ok(subject_id) => {
                    self.kept().forget(subject_id);
                    tracing::debug!(%subject_id, "an erased subject is forgotten");
                }
                Err(_) => self.kept().forget_everything(),
            }
        }
        Ok(())
    }
}
