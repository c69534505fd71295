-- The retention pass (services/evals/retention.py) finds a project's rows older than its cutoff by
-- creation time.
CREATE INDEX dataset_run_items_created ON dataset_run_items (project_id, created_at);
CREATE INDEX comments_created ON comments (project_id, created_at);
CREATE INDEX annotation_queue_items_created ON annotation_queue_items (project_id, created_at);
