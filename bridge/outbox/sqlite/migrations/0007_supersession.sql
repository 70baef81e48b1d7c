-- cvbridge: foreign-keys-off
--
-- Three new states and two columns for the outbox's supersession and
-- outcome-unknown rules (see bridge/outbox/internal/sqlcore):
--
--   waiting             a newer completion for a pair whose result is being
--                       sent; sent next unless Coachview accepts that send
--   superseded          a result a newer completion replaced before
--                       Coachview accepted it (history)
--   probably-delivered  an attempt's outcome was unknown and a later one got
--                       404: Coachview most likely registered the result
--
--   waiting_id          on a sending row: its waiting row, if any
--   outcome_unknown     an attempt of the current body may have reached
--                       Coachview without its answer reaching the daemon
--
-- SQLite cannot change a CHECK constraint in place, so results is rebuilt
-- (SQLite's documented twelve-step procedure): the migration runs with
-- foreign keys off, so dropping the old table does not cascade to the
-- attempts, and the rebuilt table takes its name. ids and the AUTOINCREMENT
-- sequence are kept, so no id is ever given out twice.
CREATE TABLE results_new (
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
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'probably-delivered',
                                                      'waiting', 'rejected', 'ignored', 'superseded', 'cancelled')),
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
    delivered_at    INTEGER,
    active          INTEGER NOT NULL DEFAULT 1,
    waiting_id      INTEGER,
    outcome_unknown INTEGER NOT NULL DEFAULT 0
);

INSERT INTO results_new (id, target, connection, elearningcode, person_id, person_key, source_ref, completed_at,
    body, body_hash, state, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at,
    lease_owner, lease_until, created_at, updated_at, delivered_at, active)
SELECT id, target, connection, elearningcode, person_id, person_key, source_ref, completed_at,
    body, body_hash, state, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at,
    lease_owner, lease_until, created_at, updated_at, delivered_at, active
FROM results;

-- Carry the AUTOINCREMENT high-water mark over (purged rows had ids too).
DELETE FROM sqlite_sequence WHERE name = 'results_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'results_new', seq FROM sqlite_sequence WHERE name = 'results';

DROP TABLE results;
ALTER TABLE results_new RENAME TO results;

-- Never two active rows for one (target, Elearningcode, person) pair.
CREATE UNIQUE INDEX results_active_pair ON results (target, elearningcode, person_key) WHERE active;

-- Claim and NextDue: a range scan over the few due rows.
CREATE INDEX results_due ON results (target, next_attempt_at)
    WHERE state IN ('pending', 'sending');

-- Counts per target and List filtered by target and state, newest first.
CREATE INDEX results_target_state ON results (target, state, id);

-- List filtered by person, and the enqueue's history lookup, which names
-- every column of this index: its plan does not depend on statistics.
CREATE INDEX results_person ON results (person_key, target, elearningcode, state, id);

-- Purge: done rows by age.
CREATE INDEX results_purge ON results (updated_at)
    WHERE state IN ('delivered', 'ignored', 'rejected', 'superseded', 'cancelled');
