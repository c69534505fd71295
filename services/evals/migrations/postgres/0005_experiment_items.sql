-- What an item's root observation (Python 5's experiment-item-task span, JS's experiment-item-run
-- span) tells about a run item, for GET /experiment-items. Null for run items known only from
-- POST /dataset-run-items (Python 3), until spans with experiment attributes name them.
ALTER TABLE dataset_run_items
    ADD COLUMN start_time timestamptz(3),
    ADD COLUMN end_time timestamptz(3),
    ADD COLUMN level text,
    ADD COLUMN environment text,
    ADD COLUMN input jsonb,
    ADD COLUMN output jsonb,
    ADD COLUMN expected_output jsonb,
    ADD COLUMN metadata jsonb,
    ADD COLUMN item_metadata jsonb,
    ADD COLUMN item_version timestamptz(3);

-- Experiment items and experiments' activity by time: the span's start, else the creation.
CREATE INDEX dataset_run_items_started
    ON dataset_run_items (project_id, (coalesce(start_time, created_at)) DESC, id);
