-- Tables written in the same transaction as the events they belong to.

-- Unique values (a user's email within a tenant). The value is stored as a keyed hash
-- (HMAC-SHA-256 of the normalised value under a key derived from the master key) so the
-- table holds no personal data in clear. Inserting the reservation in the append
-- transaction makes uniqueness strong: a concurrent duplicate waits on the unique index
-- and then fails, instead of passing a racy read-model check.
CREATE TABLE unique_reservations (
    tenant_id    uuid        NOT NULL,
    kind         text        NOT NULL,
    value_hash   bytea       NOT NULL,
    owner_id     uuid        NOT NULL,
    reserved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, value_hash)
);
CREATE INDEX unique_reservations_by_owner ON unique_reservations (owner_id);

-- Idempotency keys: the first successful answer of a command, replayed for a retry with the
-- same key and the same request. Scope is the caller (user id) or, for unauthenticated
-- commands, the route; the request hash rejects a key reused for a different request.
CREATE TABLE idempotency_keys (
    scope            text        NOT NULL,
    idempotency_key  text        NOT NULL,
    request_hash     bytea       NOT NULL,
    response_status  smallint,
    response_body    jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Per-subject data keys for personal data inside event payloads (crypto-shredding).
-- `wrapped_key` is the subject's AES-256-GCM key encrypted under the master key
-- identified by `master_key_id`. Erasure deletes the row; the events stay, unreadable.
CREATE TABLE data_keys (
    subject_id     uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    master_key_id  text        NOT NULL,
    wrapped_key    bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Subjects whose key was destroyed. A key can never be created again for them.
CREATE TABLE erased_subjects (
    subject_id  uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT now()
);

-- Authentication state: an inline projection of the events, written in the same
-- transaction as the events that change it, so that a deactivation or a revocation is
-- effective for every API instance as soon as its command commits. It can be rebuilt from
-- the events at any time. See docs/adr/0004-authentication-state.md.
CREATE TABLE auth_principals (
    user_id         uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    role            text        NOT NULL CHECK (role IN ('admin', 'member')),
    status          text        NOT NULL CHECK (status IN ('active', 'deactivated')),
    platform_admin  boolean     NOT NULL DEFAULT false,
    last_position   bigint      NOT NULL
);
CREATE INDEX auth_principals_by_tenant ON auth_principals (tenant_id);

CREATE TABLE auth_sessions (
    session_id          uuid        PRIMARY KEY,
    tenant_id           uuid        NOT NULL,
    user_id             uuid        NOT NULL,
    refresh_token_hash  bytea       NOT NULL,
    created_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    revoked_at          timestamptz,
    last_position       bigint      NOT NULL
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);
CREATE UNIQUE INDEX auth_sessions_by_refresh_token ON auth_sessions (refresh_token_hash);
