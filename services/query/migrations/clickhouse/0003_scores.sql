CREATE TABLE IF NOT EXISTS scores (
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
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(event_ts, is_deleted)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), name, id);
