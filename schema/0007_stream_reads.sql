-- Loading one stream (every command does) by its id alone: the uniqueness constraint leads
-- with tenant_id, which a command does not always know (a login by refresh token), so
-- without this index a stream read scans the tenant-leading index from its start.
-- Aggregate ids are UUIDs, unique across types and tenants.
CREATE INDEX events_by_stream ON events (aggregate_id, sequence);
