-- Comments on traces, observations, sessions and prompts. The object lives in another service
-- (query or prompts), which was asked before the comment was written; no foreign key can say so.
CREATE TABLE comments (
    project_id text NOT NULL,
    id text NOT NULL,
    object_type text NOT NULL CHECK (object_type IN ('TRACE', 'OBSERVATION', 'SESSION', 'PROMPT')),
    object_id text NOT NULL,
    content text NOT NULL,
    author_user_id text,
    created_at timestamptz(3) NOT NULL DEFAULT now(),
    updated_at timestamptz(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);

CREATE INDEX comments_object ON comments (project_id, object_type, object_id, created_at DESC);

-- Annotation queues: the score configs their reviewers fill in (checked when the queue is made).
CREATE TABLE annotation_queues (
    project_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text,
    score_config_ids text[] NOT NULL,
    created_at timestamptz(3) NOT NULL DEFAULT now(),
    updated_at timestamptz(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, name)
);

CREATE INDEX annotation_queues_list ON annotation_queues (project_id, created_at DESC, id DESC);

-- The objects to review. completed_by is who completed the item: the public API has no users, so
-- it is the public key of the API key that did it.
CREATE TABLE annotation_queue_items (
    project_id text NOT NULL,
    id text NOT NULL,
    queue_id text NOT NULL,
    object_id text NOT NULL,
    object_type text NOT NULL CHECK (object_type IN ('TRACE', 'OBSERVATION', 'SESSION')),
    status text NOT NULL CHECK (status IN ('PENDING', 'COMPLETED')),
    completed_at timestamptz(3),
    completed_by text,
    created_at timestamptz(3) NOT NULL DEFAULT now(),
    updated_at timestamptz(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, queue_id) REFERENCES annotation_queues (project_id, id)
        ON DELETE CASCADE
);

CREATE INDEX annotation_queue_items_list
    ON annotation_queue_items (project_id, queue_id, created_at DESC, id DESC);

-- Users assigned to a queue. There are no users here: the user id is kept as given.
CREATE TABLE annotation_queue_assignments (
    project_id text NOT NULL,
    queue_id text NOT NULL,
    user_id text NOT NULL,
    created_at timestamptz(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, queue_id, user_id),
    FOREIGN KEY (project_id, queue_id) REFERENCES annotation_queues (project_id, id)
        ON DELETE CASCADE
);
