-- Mail budgets (ADR 0026): every kind of email is capped per inbox and per tenant, and
-- security alerts that find their inbox's budget spent wait and go out together.
--
-- `mailbox` is the inbox an address reaches: lower case, without a `+tag`, so that
-- `Victim+1@Example.org` and `victim@example.org` share one budget. It follows `recipient`
-- (erasure empties both).
ALTER TABLE email_jobs
    ADD COLUMN mailbox text GENERATED ALWAYS AS (lower(regexp_replace(recipient, '\+[^@]*@', '@'))) STORED;

-- The job whose email carried this one (a security alert combined into another); such a job
-- is `sent` but spends no budget of its own.
ALTER TABLE email_jobs ADD COLUMN sent_with uuid;

DROP INDEX email_jobs_sent_to;
CREATE INDEX email_jobs_sent_to ON email_jobs (mailbox, security, sent_at)
    WHERE status = 'sent' AND sent_with IS NULL;
CREATE INDEX email_jobs_sent_by_tenant ON email_jobs (tenant_id, sent_at)
    WHERE status = 'sent' AND sent_with IS NULL;
CREATE INDEX email_jobs_alerts_waiting ON email_jobs (mailbox, due_at)
    WHERE status = 'pending' AND security;
