-- Scores sorted without their name: the name may change under the same id (an upsert renaming a
-- score), and a sort key that changes leaves two live rows for one id. A score's timestamp keeps
-- its first value, so the key is stable; should an earlier event arrive late and move it, the
-- writer tombstones the row under the old key.
-- Every table also gains `merge_clocks`: the clock of the event that set each field
-- (services/query/rows.py), so a row read back merges later events as exactly as the state the
-- writer keeps in memory.
-- The rows move once and EXCHANGE swaps the tables atomically. Rerunnable after a crash at any
-- step: the first DROP removes a partial copy, or the old table if the exchange already happened
-- (both tables then have `merge_clocks` last, so SELECT * matches either way).
ALTER TABLE traces ADD COLUMN IF NOT EXISTS merge_clocks String DEFAULT '' CODEC(ZSTD(1));
ALTER TABLE observations ADD COLUMN IF NOT EXISTS merge_clocks String DEFAULT '' CODEC(ZSTD(1));
ALTER TABLE scores ADD COLUMN IF NOT EXISTS merge_clocks String DEFAULT '' CODEC(ZSTD(1));
DROP TABLE IF EXISTS scores_by_id;
CREATE TABLE scores_by_id (
    project_id String,
    id String,
    timestamp DateTime64(3, 'UTC'),
    trace_id Nullable(String),
    observation_id Nullable(String),
    session_id Nullable(String),
    dataset_run_id Nullable(String),
    environment LowCardinality(String) DEFAULT 'default',
    name String,
    value Float64,
    string_value Nullable(String),
    data_type LowCardinality(String),
    source LowCardinality(String),
    comment Nullable(String) CODEC(ZSTD(1)),
    metadata Map(LowCardinality(String), String),
    config_id Nullable(String),
    queue_id Nullable(String),
    author_user_id Nullable(String),
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    event_ts DateTime64(3, 'UTC'),
    is_deleted UInt8 DEFAULT 0,
    merge_clocks String DEFAULT '' CODEC(ZSTD(1)),
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(event_ts, is_deleted)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), id);

INSERT INTO scores_by_id SELECT * FROM scores;
EXCHANGE TABLES scores AND scores_by_id;
DROP TABLE scores_by_id;
