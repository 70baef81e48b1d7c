-- The outbox schema.
--
-- Every time is an INTEGER of Unix milliseconds UTC; NULL means "not set"
-- (a zero time.Time in Go). Booleans are INTEGER 0/1. Apart from the
-- AUTOINCREMENT key these statements are PostgreSQL-compatible in shape, so the
-- PostgreSQL backend can follow them column for column.

-- results is the outbox: one row per enqueued completion. Only the active
-- states (pending, sending, delivered, failed) take part in the
-- one-row-per-pair rule; see results_active_pair.
--
-- person_key is lower(person_id), computed in Go, so the pair compares the
-- PersoonExterneId case-insensitively the way Coachview does.
--
-- For a sending row next_attempt_at equals lease_until: the row is due again
-- when its lease runs out. That keeps Claim and NextDue on one index range
-- (results_due) for pending and sending rows alike.
--
-- AUTOINCREMENT keeps ids from ever being reused after a purge: ids are shown
-- to the operator, quoted in the reasons of ignored rows and used for keyset
-- paging.
CREATE TABLE results (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    target          TEXT    NOT NULL,
    connection      TEXT    NOT NULL,
    elearningcode   TEXT    NOT NULL,
    person_id       TEXT    NOT NULL,
    person_key      TEXT    NOT NULL,
    source_ref      TEXT    NOT NULL DEFAULT '',
    completed_at    INTEGER,
    body            BLOB,
    body_hash       BLOB,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'rejected', 'ignored', 'cancelled')),
    tries           INTEGER NOT NULL DEFAULT 0,
    streak          INTEGER NOT NULL DEFAULT 0,
    streak_since    INTEGER,
    last_class      TEXT    NOT NULL DEFAULT '',
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at INTEGER,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);

-- Never two active rows for one (target, Elearningcode, person) pair.
CREATE UNIQUE INDEX results_active_pair ON results (target, elearningcode, person_key)
    WHERE state IN ('pending', 'sending', 'delivered', 'failed');

-- Claim and NextDue: a range scan over the few due rows, however many
-- delivered rows are retained.
CREATE INDEX results_due ON results (target, next_attempt_at)
    WHERE state IN ('pending', 'sending');

-- Counts per target and List filtered by target and state, newest first.
CREATE INDEX results_target_state ON results (target, state, id);

-- List filtered by person.
CREATE INDEX results_person ON results (person_key, id);

-- Purge: terminal rows by age.
CREATE INDEX results_purge ON results (updated_at)
    WHERE state IN ('delivered', 'ignored', 'rejected', 'cancelled');

-- attempts records every delivery attempt of a result; purged with it.
-- duration_ns is the request duration in nanoseconds.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    result_id   INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0,
    class       TEXT    NOT NULL DEFAULT '',
    response    TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    duration_ns INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX attempts_result ON attempts (result_id, id);

-- cursors holds each LMS connection's opaque read position.
CREATE TABLE cursors (
    connection TEXT    PRIMARY KEY,
    cursor     BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- marks records the items each LMS connection has already handed over.
CREATE TABLE marks (
    connection TEXT    NOT NULL,
    mark       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (connection, mark)
);

-- target_state holds a target's pause; a target without a row is active.
CREATE TABLE target_state (
    target        TEXT    PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0,
    reason        TEXT    NOT NULL DEFAULT '',
    paused_at     INTEGER,
    next_probe_at INTEGER
);
