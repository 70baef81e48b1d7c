-- A delivery is the outbox's commonest write, and on SQLite every
-- statement a row trigger runs costs per row. Two changes take work off it
-- without changing what is kept:
--
-- 1. The counters of a finish's own transition (sending to delivered,
--    failed or probably-delivered) are no longer written by the row
--    trigger, three statements per result, but by the finish itself, once
--    per transaction for the whole batch (sqlcore.Config.CountFinishes).
--    Every other change of state is still counted here. Only the finish
--    makes these transitions: the operator's confirm starts from
--    probably-delivered, a release and a retry go back to pending.
DROP TRIGGER results_count_update;
CREATE TRIGGER results_count_update AFTER UPDATE OF state ON results
    WHEN OLD.target IS NEW.target AND OLD.state IS NOT NEW.state
        AND NOT (OLD.state IN ('pending', 'sending') AND NEW.state IN ('pending', 'sending'))
        AND NOT (OLD.state = 'sending' AND NEW.state IN ('delivered', 'failed', 'probably-delivered'))
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

-- 2. results_person leaves out the state, so that a claim and a finish,
--    which change only the state, leave this index alone. The enqueue's
--    history lookup names person, target and part, and reads the state of
--    the pair's few rows; SQLite's planner picks the index without
--    statistics (it has none unless ANALYZE runs).
DROP INDEX results_person;
CREATE INDEX results_person ON results (person_key, target, elearningcode, id);
