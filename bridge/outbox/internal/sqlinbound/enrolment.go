package sqlinbound

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/source"
)

var (
	_ inboundstore.EnrolmentList = (*Store)(nil)
	_ inboundstore.MessagePurger = (*Store)(nil)
)

// enrolmentCols are the enrolments columns, in enrolmentRow's order.
const enrolmentCols = `connection, person_id, elearningcode, state, message_id, created_at, updated_at`

// enrolmentRow is an enrolments row as stored.
type enrolmentRow struct {
	Connection    string `db:"connection"`
	PersonID      string `db:"person_id"`
	ElearningCode string `db:"elearningcode"`
	State         string `db:"state"`
	MessageID     int64  `db:"message_id"`
	CreatedAt     int64  `db:"created_at"`
	UpdatedAt     int64  `db:"updated_at"`
}

func (r enrolmentRow) enrolment() inboundstore.Enrolment {
	return inboundstore.Enrolment{
		Connection: r.Connection, PersonID: r.PersonID, ElearningCode: r.ElearningCode,
		State: inboundstore.EnrolmentState(r.State), MessageID: r.MessageID,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC(),
	}
}

// recordEnrolment inserts or updates e's list entry within tx; the entry's
// created_at is e.UpdatedAt when it is new.
func (s *Store) recordEnrolment(ctx context.Context, tx *sqlx.Tx, e inboundstore.Enrolment) error {
	person, code := strings.TrimSpace(e.PersonID), strings.TrimSpace(e.ElearningCode)
	if person == "" || code == "" {
		return fmt.Errorf("record enrolment of connection %q: the person id and e-learning code must be set", e.Connection)
	}
	at := e.UpdatedAt.UnixMilli()
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO enrolments (`+enrolmentCols+`, person_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (connection, person_key, elearningcode) DO UPDATE SET person_id = excluded.person_id,
			state = excluded.state, message_id = excluded.message_id, updated_at = excluded.updated_at`),
		e.Connection, person, code, string(e.State), e.MessageID, at, at, source.PersonKey(person))
	if err != nil {
		return fmt.Errorf("record enrolment of connection %q: %w", e.Connection, err)
	}
	return nil
}

// enrolmentWhere builds the WHERE clause of f's entries.
func enrolmentWhere(f inboundstore.EnrolmentFilter) (string, []any) {
	where := ` WHERE 1 = 1`
	var args []any
	if f.Connection != "" {
		where += ` AND connection = ?`
		args = append(args, f.Connection)
	}
	if f.PersonID != "" {
		where += ` AND person_key = ?`
		args = append(args, source.PersonKey(f.PersonID))
	}
	if f.ElearningCode != "" {
		where += ` AND elearningcode = ?`
		args = append(args, strings.TrimSpace(f.ElearningCode))
	}
	if f.State != "" {
		where += ` AND state = ?`
		args = append(args, string(f.State))
	}
	return where, args
}

// ListEnrolments lists enrolment list entries; see
// inboundstore.EnrolmentList.
func (s *Store) ListEnrolments(ctx context.Context, f inboundstore.EnrolmentFilter) ([]inboundstore.Enrolment, error) {
	where, args := enrolmentWhere(f)
	query := `SELECT ` + enrolmentCols + ` FROM enrolments` + where + ` ORDER BY connection, person_key, elearningcode`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	var rows []enrolmentRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return nil, fmt.Errorf("list enrolments: %w", err)
	}
	out := make([]inboundstore.Enrolment, len(rows))
	for i, r := range rows {
		out[i] = r.enrolment()
	}
	return out, nil
}

// CountEnrolments counts enrolment list entries; see
// inboundstore.EnrolmentList.
func (s *Store) CountEnrolments(ctx context.Context, f inboundstore.EnrolmentFilter) (int, error) {
	where, args := enrolmentWhere(f)
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT count(*) FROM enrolments`+where), args...); err != nil {
		return 0, fmt.Errorf("count enrolments: %w", err)
	}
	return n, nil
}

// PurgeMessages deletes up to limit finished messages last changed before
// before; see inboundstore.MessagePurger.
func (s *Store) PurgeMessages(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge inbound messages: limit (%d) must be positive", limit)
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM inbound_messages WHERE id IN (
		SELECT id FROM inbound_messages WHERE state <> 'pending' AND updated_at < ? ORDER BY updated_at, id LIMIT ?)`),
		before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("purge inbound messages finished before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	n, err := affected(res)
	if err != nil {
		return 0, fmt.Errorf("purge inbound messages: %w", err)
	}
	return n, nil
}
