-- inbound_messages.person_key: source.PersonKey(person_id), computed in Go
-- when a message is stored, as in the SQLite schema
-- (bridge/outbox/sqlite/migrations/0011_inbound_person_key.sql, which says
-- why). PostgreSQL's lower() folds as the database's locale says (only ASCII
-- letters under the C locale) and btrim() removes only spaces, so this
-- statement fills in most keys and the migration's step in Go
-- (sqlinbound.FillPersonKeys, in the same transaction right after this
-- file) rewrites every key that differs from source.PersonKey. No default:
-- an insert that does not set the key fails.
ALTER TABLE inbound_messages ADD COLUMN person_key TEXT;

UPDATE inbound_messages SET person_key = lower(btrim(person_id));

ALTER TABLE inbound_messages ALTER COLUMN person_key SET NOT NULL;

-- The ordering rule's lookups (the pending messages of one pair) and
-- forget's (every message of a person) on one index: forget's is a prefix
-- of the ordering rule's, so the index forget had of its own goes.
DROP INDEX inbound_messages_person;
DROP INDEX inbound_messages_pending_pair;
CREATE INDEX inbound_messages_pending_pair ON inbound_messages (person_key, elearningcode, state);
