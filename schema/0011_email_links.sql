-- One-time links by email (ADR 0019): password resets, address confirmations and changes.

-- A kept link token says what it is for: an aggregate (a user) may have a reset link and an
-- address link on their way at once, and replacing one must not forget the other.
ALTER TABLE email_secrets ADD COLUMN purpose text NOT NULL DEFAULT 'invitation'
    CHECK (purpose IN ('invitation', 'password_reset', 'email_verification'));
CREATE INDEX email_secrets_aggregate ON email_secrets (aggregate_id, purpose);

-- Password reset requests, answered at once (202) and worked off the request path by the
-- projector's scheduler, so the answer and its timing never depend on whether the address
-- has an account. The address is sealed under a key derived from the master key (bound to
-- the request id); a request is deleted in the transaction that handles it, and dropped
-- unhandled once older than a reset link lives.
CREATE TABLE password_reset_requests (
    request_id      uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    sealed_email    bytea       NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    correlation_id  text
);
CREATE INDEX password_reset_requests_due ON password_reset_requests (requested_at);

-- Whether the account's address is verified (read models; the store decides).
ALTER TABLE rm_users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
ALTER TABLE rm_tenants ADD COLUMN require_verified_email boolean NOT NULL DEFAULT false;
