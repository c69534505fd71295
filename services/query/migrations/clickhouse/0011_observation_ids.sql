-- Where each observation is, by id: its trace and start day, kept by a materialized view from
-- every insert into observations (tombstones included). Observations are sorted by (project, day,
-- trace, id), so a lookup by id alone (GET /observations/{id}, the judge's fetches) tested the id
-- bloom filter of every granule of the project: ~1.5 s at 10 M observations. Looking the trace
-- and day up here first (by primary key) lets it read that one (project, day, trace) range. An id
-- listed with a day it no longer has costs a lookup that finds nothing; a missing one would hide
-- the observation, so the view is created before the backfill and both run before the service
-- starts (~25 s at 10 M observations on a loaded two-core machine; ~22 bytes per observation on
-- disk). Rerunnable: the backfill's duplicates are merged away (and harmless before that).
CREATE TABLE IF NOT EXISTS observation_ids (
    project_id String,
    id String,
    trace_id String,
    day Date
)
ENGINE = ReplacingMergeTree
ORDER BY (project_id, id, trace_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS observation_ids_writer TO observation_ids AS
SELECT project_id, id, trace_id, toDate(start_time) AS day FROM observations;

INSERT INTO observation_ids
SELECT project_id, id, trace_id, toDate(start_time) AS day FROM observations;
