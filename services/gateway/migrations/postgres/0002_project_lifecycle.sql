-- Projects are tombstoned when deleted (keys go at once, the row once the deletion is announced)
-- and carry updated_at for the organization's project list.
ALTER TABLE projects
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE INDEX projects_org_id ON projects (org_id, created_at) WHERE deleted_at IS NULL;
CREATE INDEX api_keys_project_id ON api_keys (project_id);
CREATE INDEX api_keys_org_id ON api_keys (org_id) WHERE scope = 'organization';
