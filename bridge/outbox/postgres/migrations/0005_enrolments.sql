-- The bridge-tracked enrolment list (bridge/inbound, inboundstore.EnrolmentList):
-- one row per LMS connection, person and e-learning code that the bridge
-- enrolled or unenrolled through the connection's enroller. It is written in
-- the transaction that marks the inbound message done, so a done enrolment
-- never exists without its row. Adapters that cannot list completions
-- (Moodle's web-service mode) read it to know whom to poll.
--
-- Ids only: person_id is Coachview's PersoonExterneId as last received,
-- person_key its lower case (ids are compared case-insensitively, as
-- Coachview does); no names or e-mail addresses. message_id is the inbound
-- message that last changed the row; it is no foreign key, as old messages
-- are purged (inbound.keep_messages) while the row stays.
-- Times are BIGINT Unix milliseconds UTC.
CREATE TABLE enrolments (
    connection    TEXT    NOT NULL,
    person_key    TEXT    NOT NULL,
    elearningcode TEXT    NOT NULL,
    person_id     TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('active', 'unenrolled')),
    message_id    BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    PRIMARY KEY (connection, person_key, elearningcode)
);

-- The operator looks entries up by person (cvbridge enrolments --person).
CREATE INDEX enrolments_person ON enrolments (person_key);

-- The purge of old inbound messages: finished messages, by age.
CREATE INDEX inbound_messages_finished ON inbound_messages (updated_at)
    WHERE state <> 'pending';
