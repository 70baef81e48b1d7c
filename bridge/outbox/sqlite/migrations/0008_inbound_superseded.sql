-- A new state of inbound messages, for the per-pair ordering rule (see
-- bridge/outbox/internal/sqlinbound): the last request Coachview sent for a
-- (person, Elearningcode) pair decides the pair's final state.
--
--   superseded  a pending enrolment or unenrolment a later request for the
--               same pair replaced before it was carried out; it never is
--
-- SQLite cannot change a CHECK constraint in place, so inbound_messages is
-- rebuilt (SQLite's documented procedure; no table refers to it). ids and
-- the AUTOINCREMENT sequence are kept.
CREATE TABLE inbound_messages_new (
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
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'ignored', 'unmapped', 'superseded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '',
    requests        INTEGER NOT NULL DEFAULT 1,
    updated_at      INTEGER NOT NULL,
    erased_at       INTEGER
);

INSERT INTO inbound_messages_new (id, source, dedupe_key, received_at, verified, event, body, action, person_id,
    elearningcode, first_name, infix, last_name, email, state, attempts, next_attempt_at, lease_owner, lease_until,
    last_error, requests, updated_at, erased_at)
SELECT id, source, dedupe_key, received_at, verified, event, body, action, person_id,
    elearningcode, first_name, infix, last_name, email, state, attempts, next_attempt_at, lease_owner, lease_until,
    last_error, requests, updated_at, erased_at
FROM inbound_messages;

DELETE FROM sqlite_sequence WHERE name = 'inbound_messages_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'inbound_messages_new', seq FROM sqlite_sequence WHERE name = 'inbound_messages';

DROP TABLE inbound_messages;
ALTER TABLE inbound_messages_new RENAME TO inbound_messages;

CREATE UNIQUE INDEX inbound_messages_dedupe ON inbound_messages (source, dedupe_key);
CREATE INDEX inbound_messages_due ON inbound_messages (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX inbound_messages_state ON inbound_messages (state, id);
CREATE INDEX inbound_messages_erase ON inbound_messages (updated_at)
    WHERE erased_at IS NULL AND state <> 'pending';
CREATE INDEX inbound_messages_person ON inbound_messages (lower(person_id));
CREATE INDEX inbound_messages_finished ON inbound_messages (updated_at)
    WHERE state <> 'pending';

-- The ordering rule's lookups: the pending messages of one pair. Not a
-- partial index: with every column of the lookup in it, a planner working
-- from the statistics of a young table still prefers it to a scan of all
-- pending messages.
CREATE INDEX inbound_messages_pending_pair ON inbound_messages (lower(person_id), elearningcode, state);
