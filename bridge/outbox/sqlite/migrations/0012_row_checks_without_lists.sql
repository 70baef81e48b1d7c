-- cvbridge: foreign-keys-off
--
-- No IN list of more than two values where SQLite evaluates it for every
-- row written. SQLite codes such a list, in a CHECK constraint, a partial
-- index's WHERE or a trigger's WHEN, as a temporary b-tree that it builds
-- again for each row an INSERT or UPDATE writes (a query's own IN list is
-- built once per statement). A claim and a finish each built four of them
-- per result: the state CHECK (ten values), results_purge's WHERE for the
-- old and the new row (five), and results_count_update's WHEN (three).
-- The same conditions written as comparisons joined by OR cost a few
-- comparisons; what they allow is unchanged. TestHotWritesBuildNoTempTables
-- keeps it so.
--
-- SQLite cannot change a CHECK constraint in place, so results is rebuilt
-- as in migration 0007 (SQLite's twelve-step procedure, with foreign keys
-- off, ids and the AUTOINCREMENT sequence kept); its indexes and triggers
-- go with the old table and are created again, the same but for the lists.
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
    state           TEXT    NOT NULL CHECK (state = 'pending' OR state = 'sending' OR state = 'delivered'
        OR state = 'failed' OR state = 'probably-delivered' OR state = 'waiting' OR state = 'rejected'
        OR state = 'ignored' OR state = 'superseded' OR state = 'cancelled'),
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
    lease_owner, lease_until, created_at, updated_at, delivered_at, active, waiting_id, outcome_unknown)
SELECT id, target, connection, elearningcode, person_id, person_key, source_ref, completed_at,
    body, body_hash, state, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at,
    lease_owner, lease_until, created_at, updated_at, delivered_at, active, waiting_id, outcome_unknown
FROM results;

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

-- List filtered by person, and the enqueue's history lookup (migration 0010).
CREATE INDEX results_person ON results (person_key, target, elearningcode, id);

-- Purge: done rows by age. The purge's query (sqlcore.PurgeQuery) names
-- this condition as written here, so that SQLite sees it may use the index.
CREATE INDEX results_purge ON results (updated_at)
    WHERE state = 'delivered' OR state = 'ignored' OR state = 'rejected' OR state = 'superseded' OR state = 'cancelled';

-- The counters' triggers of migrations 0009 and 0010.
CREATE TRIGGER results_count_insert AFTER INSERT ON results
BEGIN
    INSERT INTO result_counts (target, state, n)
        VALUES (NEW.target, CASE WHEN NEW.state IN ('pending', 'sending') THEN 'queued' ELSE NEW.state END, 1)
        ON CONFLICT (target, state) DO UPDATE SET n = n + 1;
    INSERT INTO result_hours (target, hour, delivered, failed, backlog)
        SELECT NEW.target, NEW.updated_at / 3600000, NEW.state = 'delivered', NEW.state = 'failed',
            NEW.state IN ('pending', 'sending')
        WHERE NEW.state = 'delivered' OR NEW.state = 'failed' OR NEW.state = 'pending' OR NEW.state = 'sending'
        ON CONFLICT (target, hour) DO UPDATE SET delivered = delivered + excluded.delivered,
            failed = failed + excluded.failed, backlog = backlog + excluded.backlog;
END;

CREATE TRIGGER results_count_update AFTER UPDATE OF state ON results
    WHEN OLD.target IS NEW.target AND OLD.state IS NOT NEW.state
        AND NOT (OLD.state IN ('pending', 'sending') AND NEW.state IN ('pending', 'sending'))
        AND NOT (OLD.state = 'sending'
            AND (NEW.state = 'delivered' OR NEW.state = 'failed' OR NEW.state = 'probably-delivered'))
BEGIN
    UPDATE result_counts SET n = n - 1
        WHERE target = OLD.target AND state = CASE WHEN OLD.state IN ('pending', 'sending') THEN 'queued' ELSE OLD.state END;
    INSERT INTO result_counts (target, state, n)
        VALUES (NEW.target, CASE WHEN NEW.state IN ('pending', 'sending') THEN 'queued' ELSE NEW.state END, 1)
        ON CONFLICT (target, state) DO UPDATE SET n = n + 1;
    INSERT INTO result_hours (target, hour, delivered, failed, backlog)
        VALUES (NEW.target, NEW.updated_at / 3600000, NEW.state = 'delivered', NEW.state = 'failed',
            (NEW.state IN ('pending', 'sending')) - (OLD.state IN ('pending', 'sending')))
        ON CONFLICT (target, hour) DO UPDATE SET delivered = delivered + excluded.delivered,
            failed = failed + excluded.failed, backlog = backlog + excluded.backlog;
END;

CREATE TRIGGER results_count_retarget AFTER UPDATE OF target ON results
    WHEN OLD.target IS NOT NEW.target
BEGIN
    UPDATE result_counts SET n = n - 1
        WHERE target = OLD.target AND state = CASE WHEN OLD.state IN ('pending', 'sending') THEN 'queued' ELSE OLD.state END;
    INSERT INTO result_counts (target, state, n)
        VALUES (NEW.target, CASE WHEN NEW.state IN ('pending', 'sending') THEN 'queued' ELSE NEW.state END, 1)
        ON CONFLICT (target, state) DO UPDATE SET n = n + 1;
    INSERT INTO result_hours (target, hour, backlog)
        SELECT OLD.target, NEW.updated_at / 3600000, -1 WHERE OLD.state IN ('pending', 'sending')
        ON CONFLICT (target, hour) DO UPDATE SET backlog = backlog + excluded.backlog;
    INSERT INTO result_hours (target, hour, delivered, failed, backlog)
        SELECT NEW.target, NEW.updated_at / 3600000, NEW.state = 'delivered' AND OLD.state IS NOT 'delivered',
            NEW.state = 'failed' AND OLD.state IS NOT 'failed', NEW.state IN ('pending', 'sending')
        WHERE NEW.state = 'delivered' OR NEW.state = 'failed' OR NEW.state = 'pending' OR NEW.state = 'sending'
        ON CONFLICT (target, hour) DO UPDATE SET delivered = delivered + excluded.delivered,
            failed = failed + excluded.failed, backlog = backlog + excluded.backlog;
END;

CREATE TRIGGER results_count_delete AFTER DELETE ON results
BEGIN
    UPDATE result_counts SET n = n - 1
        WHERE target = OLD.target AND state = CASE WHEN OLD.state IN ('pending', 'sending') THEN 'queued' ELSE OLD.state END;
    INSERT INTO result_hours (target, hour, backlog)
        SELECT OLD.target, unixepoch() / 3600, -1 WHERE OLD.state IN ('pending', 'sending')
        ON CONFLICT (target, hour) DO UPDATE SET backlog = backlog + excluded.backlog;
END;
