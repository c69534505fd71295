-- When each project's retention cutoff was last announced (services/gateway/retention.py): one
-- announcement a day per project, whichever gateway replica gets to it first.
ALTER TABLE projects ADD COLUMN retention_announced_at timestamptz;
CREATE INDEX projects_retention_due ON projects (retention_announced_at NULLS FIRST)
    WHERE retention_days IS NOT NULL AND deleted_at IS NULL;
