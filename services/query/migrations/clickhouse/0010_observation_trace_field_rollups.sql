-- The observations of each day grouped by their trace's name, tags, release and version (the
-- trace's current row at build time, joined as the live query joins it; null name, empty tags
-- when the trace is missing), so that metrics grouped or filtered by those fields read a few rows
-- per day instead of joining every trace at query time as observation_trace_rollups (0009) must.
-- Built, chosen and checked as observation_rollups (0008), and a build is also stale once a
-- trace with observations on its day changes (a new part of `traces` holding it; the days come
-- from observation_days). The tables start empty: days are built when a query first reads them.
CREATE TABLE IF NOT EXISTS observation_trace_field_rollups (
    project_id String,
    day Date,
    build_id UUID,
    t_name Nullable(String),
    t_tags Array(String),
    t_release Nullable(String),
    t_version Nullable(String),
    rows UInt64,
    latency_sum Nullable(Int64),
    latency_count UInt64,
    latency_min Nullable(Int64),
    latency_max Nullable(Int64),
    latency_quantiles AggregateFunction(quantiles(0.5, 0.75, 0.9, 0.95, 0.99), Nullable(Int64)),
    cost_sum Nullable(Float64),
    cost_count UInt64,
    cost_min Nullable(Float64),
    cost_max Nullable(Float64),
    tokens_sum UInt64,
    tokens_count UInt64,
    tokens_min UInt64,
    tokens_max UInt64
)
ENGINE = MergeTree
ORDER BY (project_id, day, build_id);

CREATE TABLE IF NOT EXISTS observation_trace_field_rollup_builds (
    project_id String,
    day Date,
    build_id UUID,
    built_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(built_at)
ORDER BY (project_id, day);
