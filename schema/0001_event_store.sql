-- The event store: the only source of truth. Every other table can be rebuilt from it.
--
-- `position` is the global order in which rows were inserted. Because a position is taken at
-- INSERT but becomes visible at COMMIT, readers that need commit order (the relay) must not
-- trust position alone: they read by (transaction_id, position) and only below
-- pg_snapshot_xmin(pg_current_snapshot()), i.e. only events of transactions that have ended.
-- See docs/adr/0002-ordering-and-the-relay.md.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL UNIQUE,
    tenant_id       uuid        NOT NULL,
    aggregate_type  text        NOT NULL CHECK (aggregate_type IN ('tenant', 'user', 'session')),
    aggregate_id    uuid        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence > 0),
    type            text        NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    version         integer     NOT NULL CHECK (version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Optimistic concurrency: two writers that decided against the same version of a stream
    -- both try to insert the same sequence; the second gets a unique violation (a conflict).
    CONSTRAINT events_stream_sequence UNIQUE (tenant_id, aggregate_type, aggregate_id, sequence)
);

-- The relay reads in (transaction_id, position) order.
CREATE INDEX events_by_transaction ON events (transaction_id, position);
-- Tenant-scoped reads (membership decisions, per-tenant replays).
CREATE INDEX events_by_tenant ON events (tenant_id, position);

-- Events are immutable: no UPDATE, no DELETE, ever. Erasure destroys keys, not events.
CREATE FUNCTION events_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable (attempted % on events)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Wake listeners (the relay) when events commit; NOTIFY is delivered only at commit and
-- identical notifications within one transaction are folded into one.
CREATE FUNCTION notify_events_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventra_events_appended', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended();
