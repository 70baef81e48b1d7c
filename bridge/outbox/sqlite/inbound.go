package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// The inbound messages, OAuth tokens, enrolment list, erasure of personal
// data and purge of old messages are sqlinbound's, embedded in Store.
var (
	_ inboundstore.Store         = (*Store)(nil)
	_ inboundstore.MessageAdmin  = (*Store)(nil)
	_ inboundstore.PersonalData  = (*Store)(nil)
	_ inboundstore.EnrolmentList = (*Store)(nil)
	_ inboundstore.MessagePurger = (*Store)(nil)
)

// Enrolments returns up to limit enrolment list entries after after's key
// (connection, person in lower case, e-learning code), in that order, as
// stored, for copying the store.
func (e *exporter) Enrolments(ctx context.Context, after inboundstore.Enrolment, limit int) ([]inboundstore.Enrolment, error) {
	var rows []struct {
		Connection    string `db:"connection"`
		PersonID      string `db:"person_id"`
		ElearningCode string `db:"elearningcode"`
		State         string `db:"state"`
		MessageID     int64  `db:"message_id"`
		CreatedAt     int64  `db:"created_at"`
		UpdatedAt     int64  `db:"updated_at"`
	}
	if err := e.tx.SelectContext(ctx, &rows, `SELECT connection, person_id, elearningcode, state, message_id, created_at, updated_at
		FROM enrolments WHERE (connection, person_key, elearningcode) > (?, ?, ?)
		ORDER BY connection, person_key, elearningcode LIMIT ?`,
		after.Connection, source.PersonKey(after.PersonID), after.ElearningCode, limit); err != nil {
		return nil, fmt.Errorf("export enrolment list entries after %s/%s/%s: %w", after.Connection, after.PersonID, after.ElearningCode, err)
	}
	out := make([]inboundstore.Enrolment, len(rows))
	for i, r := range rows {
		out[i] = inboundstore.Enrolment{Connection: r.Connection, PersonID: r.PersonID, ElearningCode: r.ElearningCode,
			State: inboundstore.EnrolmentState(r.State), MessageID: r.MessageID,
			CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	}
	return out, nil
}
