-- The observations of each trace per day, pre-aggregated for metrics grouped or filtered by the
-- trace's fields (its name, tags, release...): such a query joins the trace's current row at
-- query time, so only the observations are rolled up, a row per (project, day, build, trace)
-- instead of one per observation. Built, chosen and checked as observation_rollups (0008).
CREATE TABLE IF NOT EXISTS observation_trace_rollups (
    project_id String,
    day Date,
    build_id UUID,
    trace_id String,
    rows UInt64,
    latency_sum Nullable(Int64),
    latency_count UInt64,
    latency_min Nullable(Int64),
    latency_max Nullable(Int64),
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
ORDER BY (project_id, day, build_id, trace_id);

CREATE TABLE IF NOT EXISTS observation_trace_rollup_builds (
    project_id String,
    day Date,
    build_id UUID,
    built_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(built_at)
ORDER BY (project_id, day);
