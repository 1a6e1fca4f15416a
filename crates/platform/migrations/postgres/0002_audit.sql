-- Safety audit log: every block, blur, flag and policy override, per tenant. Append-only.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    job_id     TEXT,
    action     TEXT NOT NULL,
    category   TEXT,
    detail     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id DESC);
