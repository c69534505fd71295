-- One row per prompt version. Labels are unique per (project, name): a label points at exactly one
-- version, which the label-move transaction keeps true.
CREATE TABLE prompts (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL CHECK (type IN ('text', 'chat')),
    prompt jsonb NOT NULL,
    config jsonb NOT NULL DEFAULT '{}'::jsonb,
    labels text[] NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT '{}',
    commit_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name, version)
);

CREATE INDEX prompts_project_updated ON prompts (project_id, updated_at DESC);
