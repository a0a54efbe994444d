//! Password reset requests, taken from their queue in a command's transaction.

use crate::error::StoreError;
use crate::unit::Transaction;

impl Transaction {
    /// Takes the oldest queued password reset request, deleted when this transaction commits
    /// (see [`infra::password_resets::take`]).
    pub async fn take_password_reset_request(
        &self,
    ) -> Result<Option<infra::password_resets::ResetRequest>, StoreError> {
        Ok(infra::password_resets::take(self.client(), &self.shared.keys).await?)
    }
}
