-- PostgreSQL only: tell every node what changed, so a job's events reach the API node that
-- streams them and queued work wakes workers in other processes. Delivered at commit. Channels
-- are named after the schema, so deployments sharing a database do not hear each other.
CREATE FUNCTION atelier_notify_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.events', NEW.job_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    FOR EACH ROW EXECUTE FUNCTION atelier_notify_event();

CREATE FUNCTION atelier_notify_queued() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.queued', NEW.app);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_notify_queued AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'starting') EXECUTE FUNCTION atelier_notify_queued();
