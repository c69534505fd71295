-- Blob-storage export (Langfuse's /integrations/blob-storage): one integration per project, and
-- each run of it. The secret is sealed (libs/common/secret_box.py, QUERY_ENCRYPTION_KEY) and bound
-- to its project. last_sync_at is the watermark: every row whose event_ts is at or before it has
-- been exported; it moves only when a run's files are all written.
CREATE TABLE blob_storage_exports (
    project_id text PRIMARY KEY,
    type text NOT NULL,
    bucket_name text NOT NULL,
    endpoint text,
    region text NOT NULL,
    access_key_id text NOT NULL,
    secret_access_key bytea NOT NULL,
    prefix text NOT NULL,
    force_path_style boolean NOT NULL,
    export_frequency text NOT NULL,
    file_type text NOT NULL,
    compressed boolean NOT NULL,
    export_mode text NOT NULL,
    export_start_date timestamptz,
    export_source text NOT NULL,
    export_field_groups text[],
    enabled boolean NOT NULL,
    last_sync_at timestamptz,
    next_sync_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX blob_storage_exports_due ON blob_storage_exports (next_sync_at) WHERE enabled;

-- A run exports the rows with event_ts in (window_start, window_end] (window_start NULL: from
-- the beginning). A run still 'running' when its exporter died is run again with the same window
-- and so the same object keys, which the rerun overwrites.
CREATE TABLE blob_storage_export_runs (
    id bigserial PRIMARY KEY,
    project_id text NOT NULL REFERENCES blob_storage_exports ON DELETE CASCADE,
    window_start timestamptz,
    window_end timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts integer NOT NULL DEFAULT 1,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows bigint,
    objects text[],
    error text
);

CREATE INDEX blob_storage_export_runs_project ON blob_storage_export_runs (project_id, id DESC);
