-- Webhook deliveries (ADR 0028). The `webhook-deliveries` projection keeps the tenant's
-- webhooks as of the event it is at (`rm_webhooks`, which the query API lists too) and
-- queues one delivery per matching event and webhook; workers send them in order per
-- webhook, with backoff, until `delivered` or `dead`.
CREATE TABLE rm_webhooks (
    webhook_id      uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    url             text        NOT NULL,
    event_types     text[]      NOT NULL,
    description     text,
    enabled         boolean     NOT NULL,
    -- Why it was turned off by the system (it kept failing), when it was.
    disabled_reason text,
    secret_version  integer     NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    position        bigint      NOT NULL
);
CREATE INDEX rm_webhooks_by_tenant ON rm_webhooks (tenant_id, created_at DESC, webhook_id DESC)
    WHERE NOT deleted;

CREATE TABLE webhook_deliveries (
    -- The `webhook-id` header: the same on every attempt.
    delivery_id     uuid        PRIMARY KEY,
    -- The order of the projection: a webhook's deliveries go out in this order.
    seq             bigserial   NOT NULL,
    webhook_id      uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    position        bigint      NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'dead', 'discarded')),
    attempts        integer     NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    claim_token     uuid,
    -- The endpoint's last answer: its status code, or why there was none.
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (webhook_id, seq)
    WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_listed ON webhook_deliveries (webhook_id, status, created_at DESC, delivery_id DESC);

CREATE TABLE webhook_delivery_attempts (
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    status_code  integer,
    error        text,
    PRIMARY KEY (delivery_id, attempt, finished_at)
);
