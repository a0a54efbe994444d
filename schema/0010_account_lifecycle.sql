-- Scheduled deletion: an account locked out until restored or purged.
ALTER TABLE auth_principals DROP CONSTRAINT auth_principals_status_check;
ALTER TABLE auth_principals ADD CONSTRAINT auth_principals_status_check
    CHECK (status IN ('active', 'deactivated', 'deletion_scheduled'));

-- When a scheduled deletion purges the account (admins see it; lists and search hide it).
ALTER TABLE rm_users ADD COLUMN purge_at timestamptz;

-- A scheduler's claim on a due timer (ADR 0014): taken in one short statement, released when
-- the timer has fired, and taken over by another scheduler once it runs out.
CREATE TABLE timer_leases (
    kind          text        NOT NULL,
    aggregate_id  uuid        NOT NULL,
    leased_until  timestamptz NOT NULL,
    PRIMARY KEY (kind, aggregate_id)
);

-- The client a session was opened from (decrypted from user.logged_in; gone with the user).
ALTER TABLE rm_sessions ADD COLUMN user_agent text;
