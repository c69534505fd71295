-- Media records: one per content (the id is derived from its SHA-256) and project. uploaded_at is
-- set once S3 holds the object; the upload_* columns keep what the client last reported.
CREATE TABLE media (
    project_id text NOT NULL,
    id text NOT NULL,
    sha256_hash text NOT NULL,
    content_type text NOT NULL,
    content_length bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    uploaded_at timestamptz,
    upload_http_status integer,
    upload_http_error text,
    upload_time_ms bigint,
    PRIMARY KEY (project_id, id)
);

-- Where each media is referenced: a trace (maybe an observation of it) or a dataset item, and
-- the field. Unused parts are '' so that a link is recorded once; the unique index hashes the ids
-- (each up to 800 characters) to stay within a btree entry.
CREATE TABLE media_links (
    project_id text NOT NULL,
    media_id text NOT NULL,
    trace_id text NOT NULL,
    observation_id text NOT NULL,
    dataset_id text NOT NULL,
    dataset_item_id text NOT NULL,
    field text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (project_id, media_id) REFERENCES media ON DELETE CASCADE
);
CREATE UNIQUE INDEX media_links_unique ON media_links (
    project_id, media_id, field,
    md5(trace_id || E'\x1f' || observation_id || E'\x1f' || dataset_id || E'\x1f' || dataset_item_id)
);
CREATE INDEX media_links_trace ON media_links (project_id, trace_id) WHERE trace_id <> '';
