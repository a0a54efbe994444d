-- Teams and invitations have streams of their own.
ALTER TABLE events DROP CONSTRAINT events_aggregate_type_check;
ALTER TABLE events ADD CONSTRAINT events_aggregate_type_check
    CHECK (aggregate_type IN ('tenant', 'user', 'session', 'team', 'invitation')) NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_aggregate_type_check;

-- Whether the admin who invited is told when an invitation expires.
ALTER TABLE rm_tenants ADD COLUMN invitation_expiry_notices boolean NOT NULL DEFAULT true;

-- Teams and invitations (their read models), the durable timers the scheduler fires, the
-- sealed one-time links an email carries until it is sent, and email uniqueness per
-- recipient (one event may mail several people with one template: team.members_added).

CREATE TABLE rm_teams (
    team_id        uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    name           text        NOT NULL,
    description    text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    last_position  bigint      NOT NULL
);
CREATE INDEX rm_teams_by_tenant ON rm_teams (tenant_id, created_at, team_id);

CREATE TABLE rm_team_members (
    tenant_id      uuid        NOT NULL,
    team_id        uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    added_at       timestamptz NOT NULL,
    last_position  bigint      NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX rm_team_members_by_user ON rm_team_members (tenant_id, user_id);

-- The invited address is personal data: blanked when the account it is for is erased.
CREATE TABLE rm_invitations (
    invitation_id  uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    email          text,
    role           text        NOT NULL,
    team_ids       uuid[]      NOT NULL DEFAULT '{}',
    status         text        NOT NULL,
    invited_by     uuid        NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    sent_count     integer     NOT NULL DEFAULT 1,
    accepted_by    uuid,
    closed_at      timestamptz,
    updated_at     timestamptz NOT NULL,
    last_position  bigint      NOT NULL
);
CREATE INDEX rm_invitations_by_tenant ON rm_invitations (tenant_id, created_at, invitation_id);
CREATE INDEX rm_invitations_by_user ON rm_invitations (user_id);

-- Durable timers: "when due_at passes, ask the aggregate". Filled by the `timers`
-- projection, claimed by the scheduler with FOR UPDATE SKIP LOCKED (ADR 0014).
CREATE TABLE timers (
    kind           text        NOT NULL,
    aggregate_id   uuid        NOT NULL,
    tenant_id      uuid        NOT NULL,
    due_at         timestamptz NOT NULL,
    last_position  bigint      NOT NULL,
    PRIMARY KEY (kind, aggregate_id)
);
CREATE INDEX timers_by_due ON timers (due_at);

-- One-time links (invitation tokens) between the command that made them and the email that
-- carries them: sealed under a key derived from the master key, bound to the event, deleted
-- once the email is sent, given up, or the token is replaced (ADR 0015).
CREATE TABLE email_secrets (
    event_id       uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    aggregate_id   uuid        NOT NULL,
    sealed         bytea       NOT NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_secrets_by_aggregate ON email_secrets (aggregate_id);

ALTER TABLE email_job_sources ADD COLUMN user_id uuid;
UPDATE email_job_sources s SET user_id = j.user_id FROM email_jobs j WHERE j.job_id = s.job_id;
UPDATE email_job_sources SET user_id = '00000000-0000-0000-0000-000000000000' WHERE user_id IS NULL;
ALTER TABLE email_job_sources ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE email_job_sources DROP CONSTRAINT email_job_sources_pkey;
ALTER TABLE email_job_sources ADD PRIMARY KEY (event_id, template, user_id);
