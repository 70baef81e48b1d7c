-- A new state of inbound messages, for the per-pair ordering rule, as in the
-- SQLite schema (bridge/outbox/sqlite/migrations/0008_inbound_superseded.sql,
-- which says what it means).
ALTER TABLE inbound_messages
    DROP CONSTRAINT inbound_messages_state_check,
    ADD CONSTRAINT inbound_messages_state_check
        CHECK (state IN ('pending', 'done', 'failed', 'ignored', 'unmapped', 'superseded'));

-- The ordering rule's lookups: the pending messages of one pair. Not a
-- partial index: with every column of the lookup in it, a planner working
-- from the statistics of a young table still prefers it to a scan of all
-- pending messages.
CREATE INDEX inbound_messages_pending_pair ON inbound_messages (lower(person_id), elearningcode, state);
