-- Personal data erasure of inbound messages (AVG/GDPR, docs/privacy.md).
-- erased_at is when a message's names, e-mail address and raw body were
-- erased, NULL while they are kept. The partial index serves the retention
-- sweep: finished messages not yet erased, by age.
ALTER TABLE inbound_messages ADD COLUMN erased_at INTEGER;

CREATE INDEX inbound_messages_erase ON inbound_messages (updated_at)
    WHERE erased_at IS NULL AND state <> 'pending';

-- forget looks messages up by person, case-insensitively.
CREATE INDEX inbound_messages_person ON inbound_messages (lower(person_id));
