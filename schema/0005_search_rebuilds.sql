-- Requests to rebuild the search index (`projector replay search`). The projector that
-- writes the index builds a new generation beside the live one from the event store, then
-- switches readers to it; the request records when that finished.
CREATE TABLE search_rebuilds (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    generation    bigint,
    events        bigint
);
