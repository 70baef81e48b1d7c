-- Counts kept as rows change, so /metrics and the dashboard read a few
-- small rows instead of counting the whole outbox (issue 19, item 10).
--
--   result_counts  rows per (target, state), exact: the triggers below
--                  change it in the same transaction as the row. The
--                  backlog's two states, pending and sending, are kept
--                  together as 'queued': a claim (pending -> sending) and a
--                  release (back) then change no counter, which keeps the
--                  drain's hot path free of trigger work. The store reads
--                  sending rows live (a few in flight, through the
--                  results_target_state index) and pending as queued less
--                  sending (the store's CountsFrom).
--   result_hours   per target and hour (Unix milliseconds / 3,600,000 of
--                  the row's updated_at, the store's clock): rows that
--                  became delivered, rows that became failed (parked), and
--                  the net change of the backlog (pending + sending rows)
--
-- Every INSERT, DELETE and change of state or target of a results row goes
-- through a trigger, whatever code path made it; SQLite has one writer at
-- a time, so the counters are updated in place. The purge deletes hours
-- older than the charts show.

CREATE TABLE result_counts (
    target TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (target, state)
) WITHOUT ROWID;

CREATE TABLE result_hours (
    target    TEXT    NOT NULL,
    hour      INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    backlog   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, hour)
) WITHOUT ROWID;

INSERT INTO result_counts (target, state, n)
SELECT target, CASE WHEN state IN ('pending', 'sending') THEN 'queued' ELSE state END AS bucket, COUNT(*)
FROM results WHERE true GROUP BY target, bucket;

-- The last two days' deliveries and parkings, so the charts do not start
-- empty; the backlog's earlier hours show its level at the upgrade.
INSERT INTO result_hours (target, hour, delivered, failed)
SELECT target, hour, SUM(delivered), SUM(failed) FROM (
    SELECT target, delivered_at / 3600000 AS hour, 1 AS delivered, 0 AS failed FROM results
    WHERE state = 'delivered' AND delivered_at >= (unixepoch() - 172800) * 1000
    UNION ALL
    SELECT target, updated_at / 3600000, 0, 1 FROM results
    WHERE state = 'failed' AND updated_at >= (unixepoch() - 172800) * 1000
) WHERE true GROUP BY target, hour;

CREATE TRIGGER results_count_insert AFTER INSERT ON results
BEGIN
    INSERT INTO result_counts (target, state, n)
        VALUES (NEW.target, CASE WHEN NEW.state IN ('pending', 'sending') THEN 'queued' ELSE NEW.state END, 1)
        ON CONFLICT (target, state) DO UPDATE SET n = n + 1;
    INSERT INTO result_hours (target, hour, delivered, failed, backlog)
        SELECT NEW.target, NEW.updated_at / 3600000, NEW.state = 'delivered', NEW.state = 'failed',
            NEW.state IN ('pending', 'sending')
        WHERE NEW.state IN ('delivered', 'failed', 'pending', 'sending')
        ON CONFLICT (target, hour) DO UPDATE SET delivered = delivered + excluded.delivered,
            failed = failed + excluded.failed, backlog = backlog + excluded.backlog;
END;

-- A change of state within the backlog (a claim, a release) fires nothing.
CREATE TRIGGER results_count_update AFTER UPDATE OF state ON results
    WHEN OLD.target IS NEW.target AND OLD.state IS NOT NEW.state
        AND NOT (OLD.state IN ('pending', 'sending') AND NEW.state IN ('pending', 'sending'))
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

-- A row moved to another target (no code path does today): out of the old
-- target's counters, into the new one's.
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
        WHERE NEW.state IN ('delivered', 'failed', 'pending', 'sending')
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
