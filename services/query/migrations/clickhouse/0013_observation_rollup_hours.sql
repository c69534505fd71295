-- The metrics rollups (0008-0010) also keep each day's groups per hour: a build writes a row per
-- group of the day (hour null) and one per group of each of its hours, so a window that starts or
-- ends within a past day reads that day's whole hours from the rollups and only its partial
-- hours live (a window of the last 30 days starts mid-day). Builds made before have no hour
-- rows: the rollups are a cache, emptied here, and each day is built again by the first query
-- that reads it (as after 0008: startup does not wait for any backfill).
ALTER TABLE observation_rollups ADD COLUMN IF NOT EXISTS hour Nullable(DateTime('UTC')) AFTER build_id;
ALTER TABLE observation_trace_rollups ADD COLUMN IF NOT EXISTS hour Nullable(DateTime('UTC')) AFTER build_id;
ALTER TABLE observation_trace_field_rollups ADD COLUMN IF NOT EXISTS hour Nullable(DateTime('UTC')) AFTER build_id;
TRUNCATE TABLE observation_rollup_builds;
TRUNCATE TABLE observation_trace_rollup_builds;
TRUNCATE TABLE observation_trace_field_rollup_builds;
TRUNCATE TABLE observation_rollups;
TRUNCATE TABLE observation_trace_rollups;
TRUNCATE TABLE observation_trace_field_rollups;
