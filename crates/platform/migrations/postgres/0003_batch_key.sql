-- Jobs whose app gives them the same batch key (same model, size, steps, sampler) may be
-- claimed together and share model calls. NULL: the job always runs alone.
ALTER TABLE jobs ADD COLUMN batch_key TEXT;
CREATE INDEX jobs_batch ON jobs(app, batch_key, status, priority DESC, seq) WHERE batch_key IS NOT NULL;
