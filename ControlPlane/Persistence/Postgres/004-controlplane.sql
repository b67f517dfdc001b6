-- The control plane's own state in cluster mode: the same tables as the embedded SQLite file (ControlPlaneDatabase),
-- with PostgreSQL types. Grain state is JSON (jsonb) so an SRE can read it with psql, e.g.
--   SELECT payload->>'State' FROM grain_state WHERE grain_id = 'instance/ins-…';
CREATE TABLE grain_state
(
    state_name text        NOT NULL,
    grain_id   text        NOT NULL,
    etag       bigint      NOT NULL,
    payload    jsonb       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (state_name, grain_id)
);

-- Only a SHA-256 of each secret is kept (see ApiKeyStore).
CREATE TABLE api_keys
(
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    secret_hash text        NOT NULL UNIQUE,
    role        text        NOT NULL,
    tenant_id   text        NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz NULL
);

CREATE TABLE audit_events
(
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    tenant_id   text        NULL,
    action      text        NOT NULL,
    target      text        NULL,
    outcome     text        NOT NULL,
    details     text        NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);
