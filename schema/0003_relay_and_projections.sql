-- The relay's progress: the last event published and acknowledged by JetStream, as the
-- (transaction_id, position) pair it reads by, and the identity of the stream it
-- published into (a recreated stream starts over). See docs/adr/0005-relay-and-projections.md.
CREATE TABLE relay_checkpoints (
    relay                text        PRIMARY KEY,
    last_transaction_id  bigint      NOT NULL DEFAULT 0,
    last_position        bigint      NOT NULL DEFAULT 0,
    stream_created       timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Each projection's progress, advanced in the same transaction as its read-model writes.
CREATE TABLE projection_checkpoints (
    projection           text        PRIMARY KEY,
    last_transaction_id  bigint      NOT NULL DEFAULT 0,
    last_position        bigint      NOT NULL DEFAULT 0,
    last_event_at        timestamptz,
    events_applied       bigint      NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Messages a projection could not apply: kept with the error for inspection, retry or
-- discard from the CLI. The projection moved on past them.
CREATE TABLE dead_letters (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection      text        NOT NULL,
    event_id        uuid,
    tenant_id       uuid,
    position        bigint,
    subject         text        NOT NULL,
    payload         text        NOT NULL,
    error           text        NOT NULL,
    deliveries      bigint      NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_by_projection ON dead_letters (projection, id);

-- Read models. Every one can be dropped and rebuilt from the events.
CREATE TABLE rm_tenants (
    tenant_id      uuid        PRIMARY KEY,
    name           text        NOT NULL,
    plan           text        NOT NULL,
    admin_user_id  uuid        NOT NULL,
    created_at     timestamptz NOT NULL,
    last_position  bigint      NOT NULL
);

-- Users and profiles, decrypted. A row is deleted when its user is erased.
CREATE TABLE rm_users (
    user_id        uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    email          text        NOT NULL,
    display_name   text        NOT NULL,
    phone          text,
    locale         text,
    role           text,
    status         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint      NOT NULL,
    last_position  bigint      NOT NULL
);
CREATE INDEX rm_users_by_tenant ON rm_users (tenant_id, created_at, user_id);

CREATE TABLE rm_memberships (
    tenant_id      uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    role           text        NOT NULL,
    status         text        NOT NULL,
    joined_at      timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    last_position  bigint      NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE rm_sessions (
    session_id         uuid        PRIMARY KEY,
    tenant_id          uuid        NOT NULL,
    user_id            uuid        NOT NULL,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    last_refreshed_at  timestamptz,
    revoked_at         timestamptz,
    revoke_reason      text,
    last_position      bigint      NOT NULL
);
CREATE INDEX rm_sessions_by_user ON rm_sessions (tenant_id, user_id, created_at);

-- What users did (seed US-10/11): logins, profile updates, role and status changes.
CREATE TABLE rm_activity (
    event_id     uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    position     bigint      NOT NULL,
    user_id      uuid        NOT NULL,
    actor_id     uuid,
    action       text        NOT NULL,
    details      jsonb       NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX rm_activity_by_tenant ON rm_activity (tenant_id, position DESC);

-- Every event, with a summary that never holds personal data.
CREATE TABLE rm_audit (
    event_id        uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    position        bigint      NOT NULL,
    event_type      text        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    uuid        NOT NULL,
    actor_id        uuid,
    subject_id      uuid,
    summary         text        NOT NULL,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX rm_audit_by_tenant ON rm_audit (tenant_id, position DESC);
