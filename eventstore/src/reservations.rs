//! Unique values within a tenant (an email), reserved in the transaction of the command
//! that takes them; [`crate::Reader::reservation_owner`] reads who holds one.

use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::StoreError;

/// The reservation kind for a user's email within a tenant (its blind index).
pub const EMAIL: &str = "email";

/// The reservation kind that points an address at its latest invitation (its blind index).
pub const INVITATION: &str = "invitation";
use crate::unit::Transaction;

impl Transaction {
    /// Reserves a unique value for `owner` within a tenant.
    #[tracing::instrument(skip(self, value_hash))]
    pub async fn reserve(
        &self,
        tenant_id: Uuid,
        kind: &str,
        value_hash: &[u8],
        owner_id: Uuid,
    ) -> Result<(), StoreError> {
        let result = self
            .client()
            .execute(
                "INSERT INTO unique_reservations (tenant_id, kind, value_hash, owner_id) VALUES ($1, $2, $3, $4)",
                &[&tenant_id, &kind, &value_hash, &owner_id],
            )
            .await;
        held_or(result, kind)
    }

    /// Gives a unique value to `owner` whoever held it before (a new invitation of an
    /// address whose previous one is over).
    #[tracing::instrument(skip(self, value_hash))]
    pub async fn take_over(
        &self,
        tenant_id: Uuid,
        kind: &str,
        value_hash: &[u8],
        owner_id: Uuid,
    ) -> Result<(), StoreError> {
        self.client()
            .execute(
                "INSERT INTO unique_reservations (tenant_id, kind, value_hash, owner_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, kind, value_hash) DO UPDATE SET owner_id = excluded.owner_id",
                &[&tenant_id, &kind, &value_hash, &owner_id],
            )
            .await?;
        Ok(())
    }

    /// Gives up `owner`'s reservation of a value (an account that moved to a new address).
    #[tracing::instrument(skip(self, value_hash))]
    pub async fn release(
        &self,
        tenant_id: Uuid,
        kind: &str,
        value_hash: &[u8],
        owner_id: Uuid,
    ) -> Result<(), StoreError> {
        self.client()
            .execute(
                "DELETE FROM unique_reservations
                  WHERE tenant_id = $1 AND kind = $2 AND value_hash = $3 AND owner_id = $4",
                &[&tenant_id, &kind, &value_hash, &owner_id],
            )
            .await?;
        Ok(())
    }

    /// Reserves several values of one kind at once, each for its owner (a bulk import's
    /// batch); any already held fails the whole statement as [`StoreError::Duplicate`].
    pub async fn reserve_many(
        &self,
        tenant_id: Uuid,
        kind: &str,
        values: &[(Vec<u8>, Uuid)],
    ) -> Result<(), StoreError> {
        let hashes: Vec<&[u8]> = values.iter().map(|(hash, _)| hash.as_slice()).collect();
        let owners: Vec<Uuid> = values.iter().map(|(_, owner)| *owner).collect();
        let result = self
            .client()
            .execute(
                "INSERT INTO unique_reservations (tenant_id, kind, value_hash, owner_id)
                 SELECT $1, $2, * FROM unnest($3::bytea[], $4::uuid[])",
                &[&tenant_id, &kind, &hashes, &owners],
            )
            .await;
        held_or(result, kind)
    }

    /// Gives several values to their owners whoever held them before.
    pub async fn take_over_many(
        &self,
        tenant_id: Uuid,
        kind: &str,
        values: &[(Vec<u8>, Uuid)],
    ) -> Result<(), StoreError> {
        let hashes: Vec<&[u8]> = values.iter().map(|(hash, _)| hash.as_slice()).collect();
        let owners: Vec<Uuid> = values.iter().map(|(_, owner)| *owner).collect();
        self.client()
            .execute(
                "INSERT INTO unique_reservations (tenant_id, kind, value_hash, owner_id)
                 SELECT $1, $2, * FROM unnest($3::bytea[], $4::uuid[])
                 ON CONFLICT (tenant_id, kind, value_hash) DO UPDATE SET owner_id = excluded.owner_id",
                &[&tenant_id, &kind, &hashes, &owners],
            )
            .await?;
        Ok(())
    }
}

/// A reservation's insert: a value already held is a [`StoreError::Duplicate`] of its kind.
fn held_or(result: Result<u64, tokio_postgres::Error>, kind: &str) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(StoreError::Duplicate {
                kind: kind.to_owned(),
            })
        }
        Err(error) => Err(error.into()),
    }
}
