-- One row per trace version; the writer inserts the merged state and ReplacingMergeTree keeps the
-- newest event_ts, so replaying the same events yields the same row.
CREATE TABLE IF NOT EXISTS traces (
    project_id String,
    id String,
    timestamp DateTime64(3, 'UTC'),
    name String,
    user_id Nullable(String),
    session_id Nullable(String),
    release Nullable(String),
    version Nullable(String),
    environment LowCardinality(String) DEFAULT 'default',
    public Bool DEFAULT false,
    bookmarked Bool DEFAULT false,
    tags Array(String),
    metadata Map(LowCardinality(String), String),
    input Nullable(String) CODEC(ZSTD(3)),
    output Nullable(String) CODEC(ZSTD(3)),
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    event_ts DateTime64(3, 'UTC'),
    is_deleted UInt8 DEFAULT 0,
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(event_ts, is_deleted)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), id);
