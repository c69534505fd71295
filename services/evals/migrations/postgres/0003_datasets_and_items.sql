-- Datasets, upserted by name within a project.
CREATE TABLE datasets (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    name text NOT NULL,
    description text,
    metadata jsonb,
    input_schema jsonb,
    expected_output_schema jsonb,
    created_at timestamptz(3) NOT NULL,
    updated_at timestamptz(3) NOT NULL,
    UNIQUE (project_id, name)
);

CREATE INDEX datasets_project_created ON datasets (project_id, created_at DESC, id);

-- Dataset items, versioned by time: every change closes the current row (valid_to) and inserts
-- the item's new state (valid_from = the same instant), a deletion only closes it. The row valid
-- at instant t has valid_from <= t < coalesce(valid_to, infinity); the current row has
-- valid_to IS NULL. Times have millisecond precision, as the API prints them, so a version
-- taken from a printed updatedAt finds that very row. created_at is the item's first creation,
-- kept by every version, so an item keeps its place in lists across versions.
CREATE TABLE dataset_items (
    project_id text NOT NULL,
    id text NOT NULL,
    valid_from timestamptz(3) NOT NULL,
    valid_to timestamptz(3),
    dataset_id text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    input jsonb,
    expected_output jsonb,
    metadata jsonb,
    source_trace_id text,
    source_observation_id text,
    created_at timestamptz(3) NOT NULL,
    PRIMARY KEY (project_id, id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- One current row per item id in a project (ids are project-unique).
CREATE UNIQUE INDEX dataset_items_current ON dataset_items (project_id, id) WHERE valid_to IS NULL;
-- Pages of a dataset's current items, in list order (created_at DESC, id).
CREATE INDEX dataset_items_current_list ON dataset_items (project_id, dataset_id, created_at DESC, id)
    WHERE valid_to IS NULL;
-- Pages of the project's current items (no dataset named).
CREATE INDEX dataset_items_current_project ON dataset_items (project_id, created_at DESC, id)
    WHERE valid_to IS NULL;
CREATE INDEX dataset_items_current_trace ON dataset_items (project_id, source_trace_id)
    WHERE valid_to IS NULL AND source_trace_id IS NOT NULL;
CREATE INDEX dataset_items_current_observation ON dataset_items (project_id, source_observation_id)
    WHERE valid_to IS NULL AND source_observation_id IS NOT NULL;
-- Reads at a version: every row of a dataset in list order, with the validity bounds in the
-- index so the time filter runs on the index alone.
CREATE INDEX dataset_items_versions ON dataset_items (project_id, dataset_id, created_at DESC, id)
    INCLUDE (valid_from, valid_to);
