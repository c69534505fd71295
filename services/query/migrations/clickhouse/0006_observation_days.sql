-- The days each trace has observations on, kept by a materialized view from every insert into
-- observations (tombstones and moved rows included): reads of a trace's observations first look
-- its days up here, by primary key, and then read only the granules of (project, day, trace) in
-- observations, whose sort key starts that way, instead of testing the trace-id bloom filter of
-- every granule of the project. A day listed for a trace whose rows were since deleted costs a
-- lookup that finds nothing; a missing day would lose rows, so the view is created before the
-- backfill and both run before the service starts. Rerunnable: the backfill's duplicates are
-- merged away (and harmless before that).
CREATE TABLE IF NOT EXISTS observation_days (
    project_id String,
    trace_id String,
    day Date
)
ENGINE = ReplacingMergeTree
ORDER BY (project_id, trace_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS observation_days_writer TO observation_days AS
SELECT project_id, trace_id, toDate(start_time) AS day FROM observations;

INSERT INTO observation_days
SELECT DISTINCT project_id, trace_id, toDate(start_time) AS day FROM observations;
