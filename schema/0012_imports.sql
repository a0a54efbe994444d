-- Bulk imports (ADR 0020): an import has a stream of its own.
ALTER TABLE events DROP CONSTRAINT events_aggregate_type_check;
ALTER TABLE events ADD CONSTRAINT events_aggregate_type_check
    CHECK (aggregate_type IN ('tenant', 'user', 'session', 'team', 'invitation', 'import')) NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_aggregate_type_check;

-- An import as its worker sees it: the queue (status, lease) and where it stands, updated in
-- the transaction of every batch, with the batch's events. The query API reads it.
CREATE TABLE imports (
    import_id    uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    format       text        NOT NULL CHECK (format IN ('csv', 'ndjson')),
    status       text        NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    total        integer     NOT NULL,
    -- The next data row to look at (1 is the first row after the header).
    next_row     integer     NOT NULL DEFAULT 1,
    processed    integer     NOT NULL DEFAULT 0,
    created      integer     NOT NULL DEFAULT 0,
    skipped      integer     NOT NULL DEFAULT 0,
    failed       integer     NOT NULL DEFAULT 0,
    started_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    lease_until  timestamptz,
    claimed_by   text,
    -- Batches that failed one after the other; the import fails at IMPORT_MAX_BATCH_FAILURES.
    failures     integer     NOT NULL DEFAULT 0,
    last_position bigint     NOT NULL DEFAULT 0
);
CREATE INDEX imports_tenant ON imports (tenant_id, created_at DESC, import_id DESC);
CREATE INDEX imports_open ON imports (created_at) WHERE status IN ('queued', 'running');

-- The uploaded rows, each sealed (AES-GCM under the master-derived secrets key, bound to the
-- import and row number): personal data that lives only until its row is imported.
CREATE TABLE import_rows (
    import_id   uuid    NOT NULL,
    row_number  integer NOT NULL,
    sealed      bytea   NOT NULL,
    PRIMARY KEY (import_id, row_number)
);

-- Rows that could not be imported: the number and a reason that quotes nothing of the row.
CREATE TABLE import_errors (
    import_id   uuid    NOT NULL,
    row_number  integer NOT NULL,
    reason      text    NOT NULL,
    PRIMARY KEY (import_id, row_number)
);
