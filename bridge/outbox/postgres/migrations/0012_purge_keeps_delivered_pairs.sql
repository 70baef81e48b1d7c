-- The retention purge keeps delivered rows, erasing their bodies, as in the
-- SQLite schema (bridge/outbox/sqlite/migrations/0013_purge_keeps_delivered_pairs.sql,
-- which says why): a deleted delivered row let a later completion of its
-- pair be sent a second time.
DROP INDEX results_purge;

-- Purge: history rows by age.
CREATE INDEX results_purge ON results (updated_at, id)
    WHERE state IN ('ignored', 'rejected', 'superseded', 'cancelled');

-- Erasure: delivered rows that still hold their body, by age.
CREATE INDEX results_erase ON results (updated_at, id)
    WHERE state = 'delivered' AND body IS NOT NULL;
