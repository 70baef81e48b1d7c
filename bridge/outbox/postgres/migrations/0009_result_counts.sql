-- Counts kept as rows change, so /metrics and the dashboard read a few
-- small rows instead of counting the whole outbox (issue 19, item 10). The
-- tables mean what they mean in the SQLite schema
-- (bridge/outbox/sqlite/migrations/0009_result_counts.sql).
--
-- Concurrent transactions must not queue on one counter row per target and
-- state (every claim and finish would wait for the commit of the one
-- before), so the statement triggers below only append to result_changes,
-- one row per (target, state, hour) a statement changed, in the
-- statement's own transaction. Readers add result_changes to the
-- compacted tables in one statement (one snapshot); the store folds the
-- changes into result_counts and result_hours now and then, deleting the
-- rows it folded in the same transaction (sqlcore's Compact).
CREATE TABLE result_counts (
    target TEXT   NOT NULL,
    state  TEXT   NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (target, state)
);

CREATE TABLE result_hours (
    target    TEXT   NOT NULL,
    hour      BIGINT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    failed    BIGINT NOT NULL DEFAULT 0,
    backlog   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (target, hour)
);

-- entered: rows that came into state in that hour (inserted or changed to
-- it); left_n: rows that went out of it (deleted or changed from it).
CREATE TABLE result_changes (
    target  TEXT   NOT NULL,
    state   TEXT   NOT NULL,
    hour    BIGINT NOT NULL,
    entered BIGINT NOT NULL,
    left_n  BIGINT NOT NULL
);

INSERT INTO result_counts (target, state, n)
SELECT target, state, COUNT(*) FROM results GROUP BY target, state;

INSERT INTO result_hours (target, hour, delivered, failed)
SELECT target, hour, SUM(delivered), SUM(failed) FROM (
    SELECT target, delivered_at / 3600000 AS hour, 1 AS delivered, 0 AS failed FROM results
    WHERE state = 'delivered' AND delivered_at >= (extract(epoch FROM now())::bigint - 172800) * 1000
    UNION ALL
    SELECT target, updated_at / 3600000, 0, 1 FROM results
    WHERE state = 'failed' AND updated_at >= (extract(epoch FROM now())::bigint - 172800) * 1000
) r GROUP BY target, hour;

CREATE FUNCTION results_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO result_changes (target, state, hour, entered, left_n)
        SELECT target, state, updated_at / 3600000, COUNT(*), 0 FROM new_rows GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO result_changes (target, state, hour, entered, left_n)
        SELECT target, state, extract(epoch FROM now())::bigint / 3600, 0, COUNT(*) FROM old_rows GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO result_changes (target, state, hour, entered, left_n)
        SELECT target, state, hour, SUM(entered), SUM(left_n) FROM (
            SELECT n.target, n.state, n.updated_at / 3600000 AS hour, 1 AS entered, 0 AS left_n
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE o.state <> n.state OR o.target <> n.target
            UNION ALL
            SELECT o.target, o.state, n.updated_at / 3600000, 0, 1
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE o.state <> n.state OR o.target <> n.target
        ) c GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER results_count_insert AFTER INSERT ON results
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION results_count_changes();
CREATE TRIGGER results_count_update AFTER UPDATE ON results
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION results_count_changes();
CREATE TRIGGER results_count_delete AFTER DELETE ON results
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION results_count_changes();
