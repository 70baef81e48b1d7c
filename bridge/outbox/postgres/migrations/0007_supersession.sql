-- Three new states and two columns for the outbox's supersession and
-- outcome-unknown rules, as in the SQLite schema
-- (bridge/outbox/sqlite/migrations/0007_supersession.sql, which says what
-- each means). probably-delivered takes part in the one-row-per-pair rule;
-- waiting and superseded do not.
ALTER TABLE results
    DROP CONSTRAINT results_state_check,
    DROP CONSTRAINT results_active_matches_state,
    ADD COLUMN waiting_id BIGINT,
    ADD COLUMN outcome_unknown BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE results
    ADD CONSTRAINT results_state_check CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'probably-delivered',
                                                        'waiting', 'rejected', 'ignored', 'superseded', 'cancelled')),
    ADD CONSTRAINT results_active_matches_state
        CHECK (active = (state IN ('pending', 'sending', 'delivered', 'failed', 'probably-delivered')));

-- Purge: done rows by age.
DROP INDEX results_purge;
CREATE INDEX results_purge ON results (updated_at, id)
    WHERE state IN ('delivered', 'ignored', 'rejected', 'superseded', 'cancelled');
