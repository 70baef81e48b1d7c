-- A claim and a finish are the outbox's commonest writes, and the
-- statement trigger of migration 0009 ran for each: PostgreSQL copied every
-- row the statement changed, body included, into transition tables, and
-- the trigger's query joined them. Measured on a drain of 20,000 results,
-- about 8 µs of the server's CPU per result, one eighth of all it spent.
-- Two changes take the counters off that path without changing what Counts
-- and Hours read, as SQLite's migrations 0009 and 0010 did:
--
-- 1. pending and sending are counted together, as 'queued' (the backlog),
--    so a claim, a release and a finish that schedules a retry change no
--    counter. Counts finds the few sending rows live, over
--    results_target_state (bridge/outbox/postgres/counts.go).
-- 2. A finish's own transition (sending to delivered, failed or
--    probably-delivered) is counted by the finish, once per transaction
--    (sqlcore.FinishCounts; the batch finish in its one statement). Only a
--    finish makes these transitions: the operator's confirm starts from
--    probably-delivered, a release and a retry go back to pending.
--
-- Every other change of state or target is counted by a row trigger whose
-- WHEN condition is false for the two above, so they queue no trigger
-- event at all (a statement trigger can have neither a condition on the
-- rows nor, with transition tables, a column list). Such changes are the
-- operator's and the supersession's, a few rows at a time; an UPDATE of
-- many (a retry of every parked result) appends two result_changes rows
-- per row, which the next compaction folds in.

-- Dropping the trigger locks the table: every transaction that changed it
-- under the old trigger has committed before the statements below run,
-- and every later one counts the new way.
DROP TRIGGER results_count_update ON results;

-- Fold the changes not yet folded in (as the store's compaction does),
-- then merge pending and sending into queued.
WITH moved AS (
    DELETE FROM result_changes RETURNING target, state, hour, entered, left_n
), counted AS (
    INSERT INTO result_counts (target, state, n)
    SELECT target, state, SUM(entered - left_n) FROM moved GROUP BY target, state
    ON CONFLICT (target, state) DO UPDATE SET n = result_counts.n + excluded.n
)
INSERT INTO result_hours (target, hour, delivered, failed, backlog)
SELECT target, hour,
    SUM(CASE WHEN state = 'delivered' THEN entered ELSE 0 END),
    SUM(CASE WHEN state = 'failed' THEN entered ELSE 0 END),
    SUM(CASE WHEN state IN ('pending', 'sending') THEN entered - left_n ELSE 0 END)
FROM moved GROUP BY target, hour
ON CONFLICT (target, hour) DO UPDATE SET delivered = result_hours.delivered + excluded.delivered,
    failed = result_hours.failed + excluded.failed, backlog = result_hours.backlog + excluded.backlog;

INSERT INTO result_counts (target, state, n)
SELECT target, 'queued', SUM(n) FROM result_counts WHERE state IN ('pending', 'sending') GROUP BY target
ON CONFLICT (target, state) DO UPDATE SET n = result_counts.n + excluded.n;
DELETE FROM result_counts WHERE state IN ('pending', 'sending');

-- The bucket a state is counted in.
CREATE FUNCTION result_count_bucket(state TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN state IN ('pending', 'sending') THEN 'queued' ELSE state END
$$;

-- Inserts and deletes keep their statement triggers (an enqueue of a
-- source's batch, a purge), now counting buckets.
CREATE OR REPLACE FUNCTION results_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO result_changes (target, state, hour, entered, left_n)
        SELECT target, result_count_bucket(state), updated_at / 3600000, COUNT(*), 0 FROM new_rows GROUP BY 1, 2, 3;
    ELSE -- DELETE
        INSERT INTO result_changes (target, state, hour, entered, left_n)
        SELECT target, result_count_bucket(state), extract(epoch FROM now())::bigint / 3600, 0, COUNT(*)
        FROM old_rows GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION results_count_row_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO result_changes (target, state, hour, entered, left_n) VALUES
        (NEW.target, result_count_bucket(NEW.state), NEW.updated_at / 3600000, 1, 0),
        (OLD.target, result_count_bucket(OLD.state), NEW.updated_at / 3600000, 0, 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER results_count_update AFTER UPDATE OF state, target ON results FOR EACH ROW
    WHEN ((OLD.target <> NEW.target OR result_count_bucket(OLD.state) <> result_count_bucket(NEW.state))
        AND NOT (OLD.target = NEW.target AND OLD.state = 'sending'
                 AND NEW.state IN ('delivered', 'failed', 'probably-delivered')))
    EXECUTE FUNCTION results_count_row_change();
