-- The identity of this event store. The relay stamps it on every message, and projections
-- ignore messages stamped by another store (a stream left over from a dropped or restored
-- database must never leak into this one's read models).
CREATE TABLE store_identity (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id    uuid        NOT NULL DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO store_identity DEFAULT VALUES;
