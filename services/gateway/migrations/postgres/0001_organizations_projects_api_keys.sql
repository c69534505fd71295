CREATE TABLE organizations (
    id text PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id text PRIMARY KEY,
    org_id text NOT NULL REFERENCES organizations (id),
    name text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    retention_days integer,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Secrets are never stored: secret_hash is an HMAC-SHA256 of the secret under the server's salt,
-- unique so that Basic auth finds the key by its secret in one index lookup, as Langfuse does.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    public_key text NOT NULL UNIQUE,
    secret_hash text NOT NULL UNIQUE,
    display_secret_key text NOT NULL,
    scope text NOT NULL CHECK (scope IN ('project', 'organization')),
    org_id text NOT NULL REFERENCES organizations (id),
    project_id text REFERENCES projects (id) ON DELETE CASCADE,
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'project') = (project_id IS NOT NULL))
);
