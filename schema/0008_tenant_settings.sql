-- A tenant's settings on its read model row: who may sign up by themselves, from which
-- email domains, and how long a scheduled deletion waits before the purge.
ALTER TABLE rm_tenants
    ADD COLUMN signup_policy       text        NOT NULL DEFAULT 'open',
    ADD COLUMN allowed_domains     text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN deletion_grace_days integer     NOT NULL DEFAULT 30,
    ADD COLUMN updated_at          timestamptz;
