-- The days each trace has scores on, as observation_days (0006) is for observations: scores are
-- sorted by (project, day, id), so without the days a trace's scores were found by the trace-id
-- bloom filter of every granule, and FINAL then read every granule sharing a key range with a
-- hit. Kept by a materialized view from every insert into scores (tombstones included), created
-- before the backfill; rerunnable (duplicates merge away, and are harmless before that).
CREATE TABLE IF NOT EXISTS score_days (
    project_id String,
    trace_id String,
    day Date
)
ENGINE = ReplacingMergeTree
ORDER BY (project_id, trace_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS score_days_writer TO score_days AS
SELECT project_id, assumeNotNull(trace_id) AS trace_id, toDate(timestamp) AS day FROM scores
WHERE trace_id IS NOT NULL;

INSERT INTO score_days
SELECT DISTINCT project_id, assumeNotNull(trace_id) AS trace_id, toDate(timestamp) AS day
FROM scores WHERE trace_id IS NOT NULL;
