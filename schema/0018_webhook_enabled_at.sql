-- When a webhook was last turned on (created, or enabled again): a webhook the system turned
-- off for failing starts a fresh count of failures when an admin turns it on (ADR 0028).
ALTER TABLE rm_webhooks ADD COLUMN enabled_at timestamptz;
UPDATE rm_webhooks SET enabled_at = created_at;
