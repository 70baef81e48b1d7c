-- Inbound enrolments (bridge/inbound): messages received from Coachview's
-- enrolment link and API webhooks, and the OAuth 2.0 grants that authorise
-- the enrolment link. Times are INTEGER Unix milliseconds UTC, NULL = unset.

-- inbound_messages holds one row per distinct inbound message. A retry of
-- the same message (same source and dedupe key) is the same row: requests
-- counts the receipts. A pending row being processed carries lease_owner
-- and lease_until, and its next_attempt_at is the lease end, so it is due
-- again should its owner vanish. body holds the raw request body (personal
-- data: see the inbound package documentation for how long it is kept).
CREATE TABLE inbound_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT    NOT NULL,
    dedupe_key      TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    verified        TEXT    NOT NULL,
    event           TEXT    NOT NULL DEFAULT '',
    body            BLOB,
    action          TEXT    NOT NULL CHECK (action IN ('enrol', 'unenrol', 'ignore', 'unmapped')),
    person_id       TEXT    NOT NULL DEFAULT '',
    elearningcode   TEXT    NOT NULL DEFAULT '',
    first_name      TEXT    NOT NULL DEFAULT '',
    infix           TEXT    NOT NULL DEFAULT '',
    last_name       TEXT    NOT NULL DEFAULT '',
    email           TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'ignored', 'unmapped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '',
    requests        INTEGER NOT NULL DEFAULT 1,
    updated_at      INTEGER NOT NULL
);

CREATE UNIQUE INDEX inbound_messages_dedupe ON inbound_messages (source, dedupe_key);
CREATE INDEX inbound_messages_due ON inbound_messages (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX inbound_messages_state ON inbound_messages (state, id);

-- oauth_tokens holds the enrolment link's OAuth 2.0 grants: authorization
-- codes (code_hash) and access tokens with their refresh tokens
-- (access_hash, refresh_hash). Only the hex SHA-256 of each secret is
-- stored. Records issued from one authorization share grant_id, so a reused
-- code or rotated refresh token can revoke the whole grant.
CREATE TABLE oauth_tokens (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id              TEXT    NOT NULL,
    client_id             TEXT    NOT NULL,
    user_id               TEXT    NOT NULL DEFAULT '',
    redirect_uri          TEXT    NOT NULL DEFAULT '',
    scope                 TEXT    NOT NULL DEFAULT '',
    code_hash             TEXT    UNIQUE,
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    code_expires_at       INTEGER,
    access_hash           TEXT    UNIQUE,
    access_expires_at     INTEGER,
    refresh_hash          TEXT    UNIQUE,
    refresh_expires_at    INTEGER,
    created_at            INTEGER NOT NULL,
    revoked_at            INTEGER,
    revoke_reason         TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id, id);
