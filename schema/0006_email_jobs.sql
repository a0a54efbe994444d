-- The email queue. The `email-jobs` projection turns events into jobs; the worker claims
-- due jobs with FOR UPDATE SKIP LOCKED, sends them, and records every attempt.
--
-- A job holds the recipient's address and the names it greets them with, captured when the
-- job was created; erasing the user removes them (in the erasure's own transaction) from
-- every job but the deletion confirmation, which gives the address up once it is sent.
CREATE TABLE email_jobs (
    job_id           uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    user_id          uuid,
    -- The event that created the job (the first one, when a burst coalesced into it).
    event_id         uuid        NOT NULL,
    position         bigint      NOT NULL,
    template         text        NOT NULL,
    -- Security alerts are never rate-limited or suppressed.
    security         boolean     NOT NULL,
    recipient        text,
    variables        jsonb       NOT NULL DEFAULT '{}',
    coalesced_events integer     NOT NULL DEFAULT 1,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'suppressed', 'discarded')),
    attempts         integer     NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL,
    lease_until      timestamptz,
    claim_token      uuid,
    last_error       text,
    -- Why a job was deferred or suppressed (rate limit, erased recipient).
    note             text,
    message_id       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    sent_at          timestamptz
);

CREATE INDEX email_jobs_due ON email_jobs (due_at) WHERE status = 'pending';
CREATE INDEX email_jobs_leased ON email_jobs (lease_until) WHERE status = 'sending';
CREATE INDEX email_jobs_by_tenant ON email_jobs (tenant_id, status, created_at DESC, job_id DESC);
CREATE INDEX email_jobs_by_user ON email_jobs (user_id);
CREATE INDEX email_jobs_sent_to ON email_jobs (recipient, sent_at) WHERE status = 'sent' AND NOT security;
CREATE INDEX email_jobs_coalescing ON email_jobs (user_id, template, due_at) WHERE status = 'pending';

-- Which events made which job: an event never makes the same email twice.
CREATE TABLE email_job_sources (
    event_id  uuid NOT NULL,
    template  text NOT NULL,
    job_id    uuid NOT NULL REFERENCES email_jobs ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (event_id, template)
);

-- Every delivery attempt of every job.
CREATE TABLE email_job_attempts (
    job_id       uuid        NOT NULL REFERENCES email_jobs ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text        NOT NULL CHECK (outcome IN ('sent', 'retry', 'dead', 'deferred', 'suppressed')),
    error        text,
    PRIMARY KEY (job_id, attempt, finished_at)
);
