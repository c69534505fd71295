-- Dataset runs (experiments). The id is the stable experiment id shared with the SDKs:
-- sha256(JSON ["langfuse-experiment-v1", projectId, datasetId, runName]), first 16 hex chars.
-- dataset_id is null for an experiment on local data (known from its spans only).
CREATE TABLE dataset_runs (
    project_id text NOT NULL,
    id text NOT NULL,
    dataset_id text REFERENCES datasets (id) ON DELETE CASCADE,
    name text NOT NULL,
    description text,
    metadata jsonb,
    created_at timestamptz(3) NOT NULL,
    updated_at timestamptz(3) NOT NULL,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, dataset_id, name)
);

CREATE INDEX dataset_runs_list ON dataset_runs (project_id, dataset_id, created_at DESC, id);

-- One execution of a dataset item in a run: its trace (and optionally the observation that is
-- the item's root). Unique per (run, item, trace), so a retried request or a replayed span
-- lands on the same row.
CREATE TABLE dataset_run_items (
    project_id text NOT NULL,
    id text NOT NULL,
    dataset_run_id text NOT NULL,
    dataset_item_id text NOT NULL,
    trace_id text NOT NULL,
    observation_id text,
    created_at timestamptz(3) NOT NULL,
    updated_at timestamptz(3) NOT NULL,
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, dataset_run_id) REFERENCES dataset_runs (project_id, id) ON DELETE CASCADE,
    UNIQUE (project_id, dataset_run_id, dataset_item_id, trace_id)
);

CREATE INDEX dataset_run_items_list ON dataset_run_items (project_id, dataset_run_id, created_at DESC, id);
CREATE INDEX dataset_run_items_item ON dataset_run_items (project_id, dataset_item_id);
