-- results.active says whether a row takes part in the one-row-per-pair rule:
-- TRUE for the active states (pending, sending, delivered, failed), FALSE
-- for the rest (rejected, ignored, cancelled). results_active_pair is now
-- partial on this column rather than on state, as in the SQLite schema
-- (bridge/outbox/sqlite/migrations/0006_active_flag.sql), where it keeps the
-- delivery loop's updates out of the index. PostgreSQL gains nothing from it
-- (its non-HOT updates insert into every index whose predicate holds) but
-- follows SQLite column for column; here a CHECK constraint holds every
-- statement to the rule.
ALTER TABLE results ADD COLUMN active BOOLEAN;

UPDATE results SET active = (state IN ('pending', 'sending', 'delivered', 'failed'));

ALTER TABLE results ALTER COLUMN active SET NOT NULL,
    ADD CONSTRAINT results_active_matches_state CHECK (active = (state IN ('pending', 'sending', 'delivered', 'failed')));

DROP INDEX results_active_pair;

-- Never two active rows for one (target, Elearningcode, person) pair.
CREATE UNIQUE INDEX results_active_pair ON results (target, elearningcode, person_key) WHERE active;
