-- A delivered row is the bridge's only record that Coachview accepted its
-- pair (target, Elearningcode, person), and Coachview registers one result
-- per pair. The retention purge deleted delivered rows with the others, so
-- a completion of such a pair read after the purge (a cumulative export, a
-- regrade) was queued and sent a second time. The purge now deletes the
-- history states only; of a delivered row it erases the body and
-- Coachview's responses, as `cvbridge forget` does, and keeps the row.
DROP INDEX results_purge;

-- Purge: history rows by age. The purge's query (sqlcore.PurgeQuery) names
-- this condition as written here, so that SQLite sees it may use the index.
CREATE INDEX results_purge ON results (updated_at)
    WHERE state = 'ignored' OR state = 'rejected' OR state = 'superseded' OR state = 'cancelled';

-- Erasure: delivered rows that still hold their body, by age
-- (sqlcore's erasable query names this condition as written here).
CREATE INDEX results_erase ON results (updated_at)
    WHERE state = 'delivered' AND body IS NOT NULL;
