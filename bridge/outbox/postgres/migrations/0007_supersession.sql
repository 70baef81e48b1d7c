-- Three new states and two columns for the outbox's supersession and
-- outcome-unknown rules, as in the SQLite schema
-- (bridge/outbox/sqlite/migrations/0007_supersession.sql, which says what
-- each means). probably-delivered takes part in the one-row-per-pair rule;
-- waiting and superseded do not.
--
-- lease_server_until is a claimed row's lease end on the database server's
-- clock. Daemons on several machines share this database; a daemon whose
-- clock runs ahead would see the others' leases (lease_until, on the
-- claiming daemon's clock) as expired and send their rows a second time. A
-- lease is taken over only once the server's clock says it ended.
ALTER TABLE results
    DROP CONSTRAINT results_state_check,
    DROP CONSTRAINT results_active_matches_state,
    ADD COLUMN waiting_id BIGINT,
    ADD COLUMN outcome_unknown BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN lease_server_until BIGINT;

ALTER TABLE results
    ADD CONSTRAINT results_state_check CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'probably-delivered',
                                                        'waiting', 'rejected', 'ignored', 'superseded', 'cancelled')),
    ADD CONSTRAINT results_active_matches_state
        CHECK (active = (state IN ('pending', 'sending', 'delivered', 'failed', 'probably-delivered')));

-- Purge: done rows by age.
DROP INDEX results_purge;
CREATE INDEX results_purge ON results (updated_at, id)
    WHERE state IN ('delivered', 'ignored', 'rejected', 'superseded', 'cancelled');

-- The enqueue's history lookup (person, target, code, state) and List by
-- person, on one index whose columns the lookup names in full. With
-- results_person on (person_key, id) alone, a fresh database without
-- statistics planned the lookup on results_target_state and scanned every
-- rejected row of the target for each new one: 20,000 rejected rows took
-- 32 seconds. This plan does not depend on statistics.
DROP INDEX results_person;
CREATE INDEX results_person ON results (person_key, target, elearningcode, state, id);
