-- Webhooks (ADR 0028): a webhook has a stream of its own.
ALTER TABLE events DROP CONSTRAINT events_aggregate_type_check;
ALTER TABLE events ADD CONSTRAINT events_aggregate_type_check
    CHECK (aggregate_type IN ('tenant', 'user', 'session', 'team', 'invitation', 'import', 'webhook')) NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_aggregate_type_check;

-- Webhooks' signing secrets (ADR 0028): shown to the tenant once, kept here sealed under a
-- key derived from the master key (bound to the webhook and the secret's version), never in
-- an event. Only the newest version is kept: it is the one that signs.
CREATE TABLE webhook_secrets (
    webhook_id  uuid        NOT NULL,
    version     bigint      NOT NULL,
    tenant_id   uuid        NOT NULL,
    sealed      bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webhook_id, version)
);
