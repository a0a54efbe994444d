-- Idempotency records hold no secret and nothing a user's erasure must take (ADR 0022).
--
-- `request_hash` becomes an HMAC under a key derived from the master key: a plain SHA-256 of
-- a body that holds an email and a password was an offline check of password guesses.
-- Records written before (plain hashes, and login and refresh answers with live tokens) are
-- forgotten: a retry of one of them runs its command again.
DELETE FROM idempotency_keys;

-- An answer that carried credentials (a login, a refresh) is never stored: `withheld` marks
-- it, and a replay is answered with a problem instead.
ALTER TABLE idempotency_keys ADD COLUMN withheld boolean NOT NULL DEFAULT false;

-- Whose data the answer may hold (the caller and the streams the command appended to), so
-- that erasing a user forgets the answers about them.
ALTER TABLE idempotency_keys ADD COLUMN subjects uuid[] NOT NULL DEFAULT '{}';
CREATE INDEX idempotency_keys_by_subject ON idempotency_keys USING gin (subjects);
