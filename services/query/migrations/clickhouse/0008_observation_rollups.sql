-- Pre-aggregated metrics of whole days of observations (services/query/analytics.py, the fast
-- path of the metrics API): one row per (project, day, build, group of the observation's own
-- dimensions), computed from `observations FINAL` of that day, so a build is exactly what a live
-- query of the day would read at that moment. Builds are never updated: a newer build of a day
-- gets a new build_id, and observation_rollup_builds names the one to read (the newest, written
-- after its rows, so a build cut short is never read). A build stays valid while no active part
-- of `observations` holding rows of its day is newer than it (an insert, a tombstone, a merge or
-- a delete mutation all make new parts); otherwise the day is read live and built again.
CREATE TABLE IF NOT EXISTS observation_rollups (
    project_id String,
    day Date,
    build_id UUID,
    environment LowCardinality(String),
    type LowCardinality(String),
    name String,
    level LowCardinality(String),
    provided_model_name Nullable(String),
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

CREATE TABLE IF NOT EXISTS observation_rollup_builds (
    project_id String,
    day Date,
    build_id UUID,
    built_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(built_at)
ORDER BY (project_id, day);
