-- Which event-log objects hold a trace's events: one row per trace and request (an object holds
-- every trace of one request). Written before the request is acknowledged; a trace's deletion
-- rewrites the objects it finds here, then deletes its rows. Ids are hashed in the index (an id
-- of up to 800 characters may exceed a btree entry); queries compare the whole id too.
CREATE TABLE event_log_index (
    project_id text NOT NULL,
    trace_id text NOT NULL,
    object_key text NOT NULL
);
CREATE INDEX event_log_index_trace ON event_log_index (project_id, md5(trace_id));
