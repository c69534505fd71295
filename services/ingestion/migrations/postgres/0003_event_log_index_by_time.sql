-- The retention pass (services/ingestion/retention.py) forgets a project's index rows of objects
-- older than its cutoff: object keys start with the project and the hour they were written
-- (events/<project>/YYYY/MM/DD/HH/...), so byte order ("C") is time order.
CREATE INDEX event_log_index_key ON event_log_index (project_id, object_key COLLATE "C");
