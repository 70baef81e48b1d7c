-- inbound_messages.person_key is the message's person as every other part of
-- cvbridge compares persons: source.PersonKey(person_id), the id with the
-- white space around it removed, in lower case by Go's Unicode rules,
-- computed in Go when a message is stored, as results.person_key and
-- enrolments.person_key are. The ordering rule (a later request of a person
-- and e-learning code supersedes the earlier ones) and cvbridge forget
-- compared lower(person_id) instead, and SQLite's lower() folds only ASCII
-- letters: "ÉVA" and "éva", one person to the outbox and the enrolment
-- list, were two to them.
--
-- Filling in the column: no SQL function here computes source.PersonKey,
-- so this statement fills in lower(trim(person_id)), right for ids of plain
-- ASCII (nearly all of them), and the migration's step in Go
-- (sqlinbound.FillPersonKeys, run in the same transaction right after this
-- file) rewrites every key that differs from source.PersonKey. The default
-- '' is only for ALTER TABLE, which needs one for a NOT NULL column; every
-- insert sets the key.
ALTER TABLE inbound_messages ADD COLUMN person_key TEXT NOT NULL DEFAULT '';

UPDATE inbound_messages SET person_key = lower(trim(person_id));

-- The ordering rule's lookups (the pending messages of one pair) and
-- forget's (every message of a person) on one index: forget's is a prefix
-- of the ordering rule's, so the index forget had of its own goes.
DROP INDEX inbound_messages_person;
DROP INDEX inbound_messages_pending_pair;
CREATE INDEX inbound_messages_pending_pair ON inbound_messages (person_key, elearningcode, state);
