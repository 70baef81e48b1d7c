-- Less work for the server on the drain's two writes per result (the claim
-- and the finish, with its attempt), where a profile of a 100,000-result
-- drain (perf, PostgreSQL 15) found three costs that bought nothing:
--
-- 1. The foreign key from attempts to results. Every recorded attempt ran
--    the key's check, a query that locks the result row FOR KEY SHARE,
--    written to the WAL, although the finish inserts attempts only for rows
--    it has just updated. The key's one other use, ON DELETE CASCADE, is
--    done by the two statements that delete results (the retention purge
--    and forget), which delete the attempts of the rows they deleted in the
--    same transaction (sqlcore.DeleteAttempts);
--    outboxtest.AssertNoOrphanAttempts checks it after every conformance
--    test. SQLite keeps its key: dropping one there means copying the table.
--
-- 2. The counting trigger's condition called result_count_bucket, a SQL
--    function, which PostgreSQL inlines into the condition by parsing its
--    body again at the start of every UPDATE of results. The condition now
--    says the same without the function: a row changes bucket when its
--    state changes, unless it moves between pending and sending (both
--    'queued').
--
-- 3. The identifier columns the indexes of results are built on compared
--    text in the database's collation, through the C library's strcoll at
--    every index insert and lookup, although they are only ever compared
--    for equality, grouped and joined. COLLATE "C" compares their bytes, as
--    SQLite compares them, whatever locale the database was created with.
--    Equality is byte equality either way; only an ORDER BY on these
--    columns can change, and the outbox orders its rows by id and time.
--    The indexes on them are rebuilt (the table is not rewritten), under
--    the migration's lock: 4.4 s for a million rows on a 2-core machine.
--
-- Measured in the same run, test binaries before and after, 1 and 2 alone:
-- the server's CPU per result fell by about 9 µs (of 82–87) in each of
-- three rounds. 3 was inside the noise of the drain's rate; in the profile,
-- text comparison in index inserts fell from 1.34 % to 0.84 % of all
-- samples (C.UTF-8; a language locale's strcoll does more).

ALTER TABLE attempts DROP CONSTRAINT attempts_result_id_fkey;

-- The trigger names state and target: it goes while their type changes.
DROP TRIGGER results_count_update ON results;

ALTER TABLE results
    ALTER COLUMN target TYPE TEXT COLLATE "C",
    ALTER COLUMN elearningcode TYPE TEXT COLLATE "C",
    ALTER COLUMN person_key TYPE TEXT COLLATE "C",
    ALTER COLUMN state TYPE TEXT COLLATE "C";

CREATE TRIGGER results_count_update AFTER UPDATE OF state, target ON results FOR EACH ROW
    WHEN ((OLD.target <> NEW.target
           OR (OLD.state <> NEW.state
               AND NOT (OLD.state IN ('pending', 'sending') AND NEW.state IN ('pending', 'sending'))))
        AND NOT (OLD.target = NEW.target AND OLD.state = 'sending'
                 AND NEW.state IN ('delivered', 'failed', 'probably-delivered')))
    EXECUTE FUNCTION results_count_row_change();
