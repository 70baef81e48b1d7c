package postgres

import (
	"context"

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

// Enrolments inserts enrolment list entries as they are, keyed by
// source.PersonKey of their person id, as the store keys them.
func (im *importer) Enrolments(ctx context.Context, rows []inboundstore.Enrolment) error {
	const cols = `connection, person_key, elearningcode, person_id, state, message_id, created_at, updated_at`
	return chunked(rows, 8, func(rows []inboundstore.Enrolment) error {
		return insertRows(ctx, im.tx, "enrolments", cols, rows, func(e inboundstore.Enrolment) []any {
			return []any{e.Connection, source.PersonKey(e.PersonID), e.ElearningCode, e.PersonID, string(e.State),
				e.MessageID, e.CreatedAt.UnixMilli(), e.UpdatedAt.UnixMilli()}
		})
	})
}
