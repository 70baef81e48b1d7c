package sqlinbound

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/source"
)

var _ inboundstore.Store = (*Store)(nil)

// MessageCols are the inbound_messages columns, in MessageRow's order.
const MessageCols = `id, source, dedupe_key, received_at, verified, event, body, action, person_id, elearningcode,
	first_name, infix, last_name, email, state, attempts, next_attempt_at, lease_owner, lease_until,
	last_error, requests, updated_at, erased_at`

// MessageRow is an inbound_messages row as stored.
type MessageRow struct {
	ID            int64         `db:"id"`
	Source        string        `db:"source"`
	DedupeKey     string        `db:"dedupe_key"`
	ReceivedAt    int64         `db:"received_at"`
	Verified      string        `db:"verified"`
	Event         string        `db:"event"`
	Body          []byte        `db:"body"`
	Action        string        `db:"action"`
	PersonID      string        `db:"person_id"`
	ElearningCode string        `db:"elearningcode"`
	FirstName     string        `db:"first_name"`
	Infix         string        `db:"infix"`
	LastName      string        `db:"last_name"`
	Email         string        `db:"email"`
	State         string        `db:"state"`
	Attempts      int           `db:"attempts"`
	NextAttemptAt sql.NullInt64 `db:"next_attempt_at"`
	LeaseOwner    string        `db:"lease_owner"`
	LeaseUntil    sql.NullInt64 `db:"lease_until"`
	LastError     string        `db:"last_error"`
	Requests      int           `db:"requests"`
	UpdatedAt     int64         `db:"updated_at"`
	ErasedAt      sql.NullInt64 `db:"erased_at"`
}

// Message converts r to the inbound store's Message.
func (r MessageRow) Message() inboundstore.Message {
	return inboundstore.Message{
		ID: r.ID, Source: r.Source, DedupeKey: r.DedupeKey,
		ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC(), Verified: r.Verified, Event: r.Event, Body: r.Body,
		Action: inboundstore.Action(r.Action), PersonID: r.PersonID, ElearningCode: r.ElearningCode,
		FirstName: r.FirstName, Infix: r.Infix, LastName: r.LastName, Email: r.Email,
		State: inboundstore.State(r.State), Attempts: r.Attempts, NextAttemptAt: sqlcore.FromMillis(r.NextAttemptAt),
		LeaseOwner: r.LeaseOwner, LeaseUntil: sqlcore.FromMillis(r.LeaseUntil), LastError: r.LastError,
		Requests: r.Requests, UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC(), ErasedAt: sqlcore.FromMillis(r.ErasedAt),
	}
}

func messages(rows []MessageRow) []inboundstore.Message {
	ms := make([]inboundstore.Message, len(rows))
	for i, r := range rows {
		ms[i] = r.Message()
	}
	return ms
}

// checkNewMessage validates a message before it is stored.
func checkNewMessage(m inboundstore.Message) error {
	switch {
	case m.Source == "" || m.DedupeKey == "":
		return errors.New("source and dedupe key must be set")
	case !slices.Contains([]inboundstore.Action{inboundstore.ActionEnrol, inboundstore.ActionUnenrol, inboundstore.ActionIgnore, inboundstore.ActionUnmapped}, m.Action):
		return fmt.Errorf("action %q is not enrol, unenrol, ignore or unmapped", m.Action)
	case !slices.Contains([]inboundstore.State{inboundstore.StatePending, inboundstore.StateDone, inboundstore.StateFailed, inboundstore.StateIgnored, inboundstore.StateUnmapped}, m.State):
		return fmt.Errorf("state %q is not pending, done, failed, ignored or unmapped", m.State)
	}
	return nil
}

// SaveMessage stores m unless an equal message exists; see
// inboundstore.MessageStore. It is SaveMessages with one message.
func (s *Store) SaveMessage(ctx context.Context, m inboundstore.Message, dup inboundstore.Duplicate) (inboundstore.Message, inboundstore.SaveOutcome, error) {
	saved, outcomes, err := s.SaveMessages(ctx, []inboundstore.Message{m}, dup)
	if err != nil {
		return inboundstore.Message{}, 0, err
	}
	return saved[0], outcomes[0], nil
}

// ClaimMessages leases due pending messages; see inboundstore.MessageStore.
// Several daemons claiming at once get disjoint messages where the backend's
// ClaimLock locks the due rows. Returned messages are ordered by id. A
// message waits while an older one of its pair is being carried out
// (order.go).
func (s *Store) ClaimMessages(ctx context.Context, owner string, limit int, now time.Time, lease time.Duration) ([]inboundstore.Message, error) {
	if owner == "" || limit <= 0 || lease <= 0 {
		return nil, fmt.Errorf("claim inbound messages: owner (%q) must be set, limit (%d) and lease (%s) positive", owner, limit, lease)
	}
	until := now.Add(lease).UnixMilli()
	var rows []MessageRow
	s.writes.Lock()
	defer s.writes.Unlock()
	err := s.db.SelectContext(ctx, &rows, s.q(`UPDATE inbound_messages
		SET lease_owner = ?, lease_until = ?, next_attempt_at = ?, updated_at = ?
		WHERE id IN (SELECT m.id FROM inbound_messages m WHERE m.state = 'pending' AND m.next_attempt_at <= ?
			AND NOT `+olderInFlight+`
			ORDER BY m.next_attempt_at, m.id LIMIT ?`+s.claimLock+`)
		RETURNING `+MessageCols),
		owner, until, until, now.UnixMilli(), now.UnixMilli(), now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim inbound messages for %q: %w", owner, err)
	}
	slices.SortFunc(rows, func(a, b MessageRow) int { return cmp.Compare(a.ID, b.ID) })
	return messages(rows), nil
}

// ClaimMessage leases one pending message; see inboundstore.MessageStore.
// Like ClaimMessages, it does not take a message while an older one of its
// pair is being carried out.
func (s *Store) ClaimMessage(ctx context.Context, id int64, owner string, now time.Time, lease time.Duration) (inboundstore.Message, bool, error) {
	if owner == "" || lease <= 0 {
		return inboundstore.Message{}, false, fmt.Errorf("claim inbound message %d: owner (%q) must be set and lease (%s) positive", id, owner, lease)
	}
	until := now.Add(lease).UnixMilli()
	var row MessageRow
	s.writes.Lock()
	defer s.writes.Unlock()
	err := s.db.GetContext(ctx, &row, s.q(`UPDATE inbound_messages
		SET lease_owner = ?, lease_until = ?, next_attempt_at = ?, updated_at = ?
		WHERE id = ? AND state = 'pending' AND (lease_owner = '' OR lease_owner = ? OR lease_until <= ?)
			AND NOT EXISTS (SELECT 1 FROM inbound_messages m WHERE m.id = inbound_messages.id AND `+olderInFlight+`)
		RETURNING `+MessageCols),
		owner, until, until, now.UnixMilli(), id, owner, now.UnixMilli(), now.UnixMilli())
	if errors.Is(err, sql.ErrNoRows) {
		return inboundstore.Message{}, false, nil
	}
	if err != nil {
		return inboundstore.Message{}, false, fmt.Errorf("claim inbound message %d for %q: %w", id, owner, err)
	}
	return row.Message(), true, nil
}

// finishArgs validates f and returns the next_attempt_at to store.
func finishArgs(f inboundstore.Finish) (sql.NullInt64, error) {
	switch f.State {
	case inboundstore.StatePending:
		if f.NextAttemptAt.IsZero() {
			return sql.NullInt64{}, errors.New("a retry needs its next attempt time")
		}
		return sqlcore.Millis(f.NextAttemptAt), nil
	case inboundstore.StateDone, inboundstore.StateFailed:
		return sql.NullInt64{}, nil
	default:
		return sql.NullInt64{}, fmt.Errorf("state %q is not pending, done or failed", f.State)
	}
}

// FinishMessage records an attempt of a leased message; see
// inboundstore.MessageStore. A done enrolment or unenrolment routed to a
// connection updates the enrolment list in the same transaction.
func (s *Store) FinishMessage(ctx context.Context, f inboundstore.Finish) error {
	next, err := finishArgs(f)
	if err != nil {
		return fmt.Errorf("finish inbound message %d: %w", f.ID, err)
	}
	at := f.At
	if at.IsZero() {
		at = s.now()
	}
	update := s.q(`UPDATE inbound_messages
		SET state = ?, attempts = attempts + 1, next_attempt_at = ?, lease_owner = '', lease_until = NULL,
			last_error = ?, updated_at = ?
		WHERE id = ? AND state = 'pending' AND lease_owner = ?`)
	args := []any{string(f.State), next, inboundstore.Clip(f.Error, inboundstore.MaxError), at.UnixMilli(), f.ID, f.Owner}
	lost := func() error {
		return fmt.Errorf("finish inbound message %d for %q: %w", f.ID, f.Owner, inboundstore.ErrLeaseLost)
	}
	if f.State == inboundstore.StatePending {
		// A retry, unless a newer request of the pair came in meanwhile
		// (order.go).
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			res, err := tx.ExecContext(ctx, update, args...)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return lost()
			}
			return s.supersedeIfNewer(ctx, tx, f.ID, at)
		})
		if err != nil && !errors.Is(err, inboundstore.ErrLeaseLost) {
			return fmt.Errorf("finish inbound message %d: %w", f.ID, err)
		}
		return err
	}
	if f.State != inboundstore.StateDone || f.Connection == "" {
		// One statement, no list entry: no transaction needed.
		s.writes.Lock()
		defer s.writes.Unlock()
		res, err := s.db.ExecContext(ctx, update, args...)
		if err != nil {
			return fmt.Errorf("finish inbound message %d: %w", f.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("finish inbound message %d: %w", f.ID, err)
		} else if n == 0 {
			return lost()
		}
		return nil
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var row struct {
			Action        string `db:"action"`
			PersonID      string `db:"person_id"`
			ElearningCode string `db:"elearningcode"`
		}
		if err := tx.GetContext(ctx, &row, update+` RETURNING action, person_id, elearningcode`, args...); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return lost()
			}
			return err
		}
		state := inboundstore.EnrolmentActive
		switch inboundstore.Action(row.Action) {
		case inboundstore.ActionEnrol:
		case inboundstore.ActionUnenrol:
			state = inboundstore.EnrolmentUnenrolled
		default:
			return nil
		}
		return s.recordEnrolment(ctx, tx, inboundstore.Enrolment{
			Connection: f.Connection, PersonID: row.PersonID, ElearningCode: row.ElearningCode,
			State: state, MessageID: f.ID, UpdatedAt: at,
		})
	})
	if errors.Is(err, inboundstore.ErrLeaseLost) {
		return err
	}
	if err != nil {
		return fmt.Errorf("finish inbound message %d: %w", f.ID, err)
	}
	return nil
}

// GetMessage returns one message; see inboundstore.MessageStore.
func (s *Store) GetMessage(ctx context.Context, id int64) (inboundstore.Message, error) {
	var row MessageRow
	err := s.db.GetContext(ctx, &row, s.q(`SELECT `+MessageCols+` FROM inbound_messages WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return inboundstore.Message{}, fmt.Errorf("inbound message %d: %w", id, inboundstore.ErrNotFound)
	}
	if err != nil {
		return inboundstore.Message{}, fmt.Errorf("read inbound message %d: %w", id, err)
	}
	return row.Message(), nil
}

// ListMessages lists messages newest first; see inboundstore.MessageStore.
func (s *Store) ListMessages(ctx context.Context, f inboundstore.MessageFilter) ([]inboundstore.Message, error) {
	query, args := listMessagesQuery(f)
	var rows []MessageRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return nil, fmt.Errorf("list inbound messages: %w", err)
	}
	return messages(rows), nil
}

// listMessagesQuery builds ListMessages's query.
func listMessagesQuery(f inboundstore.MessageFilter) (string, []any) {
	query := `SELECT ` + MessageCols + ` FROM inbound_messages WHERE 1 = 1`
	var args []any
	if f.State != "" {
		query += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.Source != "" {
		query += ` AND source = ?`
		args = append(args, f.Source)
	}
	if f.BeforeID > 0 {
		query += ` AND id < ?`
		args = append(args, f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	return query + ` ORDER BY id DESC LIMIT ?`, append(args, limit)
}

// Personal data (AVG/GDPR): see inboundstore.PersonalData and docs/privacy.md.

var (
	_ inboundstore.MessageAdmin = (*Store)(nil)
	_ inboundstore.PersonalData = (*Store)(nil)
)

// eraseSet blanks a message's personal data and gives an enrolment-link
// message a key that no longer hashes its names; it binds one placeholder,
// the erasure time, which an earlier erasure keeps.
const eraseSet = `first_name = '', infix = '', last_name = '', email = '', body = NULL,
	erased_at = COALESCE(erased_at, ?),
	dedupe_key = CASE WHEN source = '` + inboundstore.SourceLink + `' THEN '` + inboundstore.ErasedKeyPrefix + `' || id ELSE dedupe_key END`

// scrubbedError is a message's last error with its e-mail address, as given
// and in lower case, taken out: an LMS's refusal may quote it (Moodle's
// "Email address already exists: …"). It reads the row's old e-mail, so it
// can sit in the same SET as eraseSet.
const scrubbedError = `replace(replace(last_error, email, '[e-mail erased]'), lower(email), '[e-mail erased]')`

// forgetReason is the last error of a pending message failed by ForgetPerson.
const forgetReason = "not carried out: the person's personal data was erased (cvbridge forget)"

// RetryMessage makes a failed message pending again; see
// inboundstore.MessageAdmin.
func (s *Store) RetryMessage(ctx context.Context, id int64, now time.Time) (inboundstore.Message, error) {
	var row MessageRow
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &row, s.q(`SELECT `+MessageCols+` FROM inbound_messages WHERE id = ?`+s.rowLock), id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return inboundstore.ErrNotFound
			}
			return err
		}
		switch {
		case row.State != string(inboundstore.StateFailed):
			return fmt.Errorf("it is %s, only a failed message can be retried: %w", row.State, inboundstore.ErrState)
		case row.ErasedAt.Valid && row.Action == string(inboundstore.ActionEnrol):
			return fmt.Errorf("the enrolment cannot be carried out again, %w; have Coachview send it again", inboundstore.ErrErased)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE inbound_messages SET state = 'pending', attempts = 0,
			next_attempt_at = ?, updated_at = ? WHERE id = ?`), now.UnixMilli(), now.UnixMilli(), id); err != nil {
			return err
		}
		return tx.GetContext(ctx, &row, s.q(`SELECT `+MessageCols+` FROM inbound_messages WHERE id = ?`), id)
	})
	if err != nil {
		return inboundstore.Message{}, fmt.Errorf("retry inbound message %d: %w", id, err)
	}
	return row.Message(), nil
}

// ErasePersonalData erases the personal data of finished messages last
// changed before before; see inboundstore.PersonalData.
func (s *Store) ErasePersonalData(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE inbound_messages SET `+eraseSet+`, last_error = `+scrubbedError+`
			WHERE erased_at IS NULL AND state <> 'pending' AND updated_at < ?`), s.now().UnixMilli(), before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("erase personal data of inbound messages finished before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	if n > 0 {
		if err := s.scrub(ctx); err != nil {
			return int(n), fmt.Errorf("%w: %v", inboundstore.ErrNotScrubbed, err)
		}
	}
	return int(n), nil
}

// ForgetPerson erases a person's personal data from inbound messages and
// outbox results in one transaction; see inboundstore.PersonalData.
func (s *Store) ForgetPerson(ctx context.Context, personID string) (inboundstore.ForgetReport, error) {
	var rep inboundstore.ForgetReport
	if strings.TrimSpace(personID) == "" {
		return rep, errors.New("forget person: the PersoonExterneId is empty")
	}
	key := source.PersonKey(personID)
	now := s.now().UnixMilli()
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var counts struct {
			All     int `db:"all_n"`
			Pending int `db:"pending_n"`
		}
		if err := tx.GetContext(ctx, &counts, s.q(`SELECT count(*) AS all_n,
			COALESCE(sum(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS pending_n
			FROM inbound_messages WHERE person_key = ?`), key); err != nil {
			return fmt.Errorf("count inbound messages: %w", err)
		}
		rep.Messages, rep.Cancelled = counts.All, counts.Pending
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE inbound_messages SET `+eraseSet+`,
			last_error = CASE WHEN state = 'pending' THEN ? ELSE `+scrubbedError+` END,
			next_attempt_at = CASE WHEN state = 'pending' THEN NULL ELSE next_attempt_at END,
			lease_owner = '', lease_until = NULL, updated_at = ?,
			state = CASE WHEN state = 'pending' THEN 'failed' ELSE state END
			WHERE person_key = ?`), now, forgetReason, now, key); err != nil {
			return fmt.Errorf("erase inbound messages: %w", err)
		}
		if err := tx.SelectContext(ctx, &rep.Undelivered, s.q(`SELECT id FROM results
			WHERE person_key = ? AND state IN ('pending', 'sending', 'failed', 'waiting') ORDER BY id`), key); err != nil {
			return fmt.Errorf("list undelivered results: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE attempts SET response = ''
			WHERE result_id IN (SELECT id FROM results WHERE person_key = ? AND state IN ('delivered', 'probably-delivered'))`), key); err != nil {
			return fmt.Errorf("erase responses of delivered results: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE results SET body = NULL WHERE person_key = ? AND state IN ('delivered', 'probably-delivered')`), key)
		if err != nil {
			return fmt.Errorf("erase delivered results: %w", err)
		}
		if rep.Delivered, err = affected(res); err != nil {
			return err
		}
		var deleted []int64
		if err := tx.SelectContext(ctx, &deleted, s.q(`DELETE FROM results
			WHERE person_key = ? AND state IN ('rejected', 'ignored', 'superseded', 'cancelled') RETURNING id`), key); err != nil {
			return fmt.Errorf("delete result history: %w", err)
		}
		rep.History = len(deleted)
		return sqlcore.DeleteAttempts(ctx, tx, deleted)
	})
	if err != nil {
		return inboundstore.ForgetReport{}, fmt.Errorf("forget person: %w", err)
	}
	if err := s.scrub(ctx); err != nil {
		rep.NotScrubbed = err.Error() // erased in the database all the same
	}
	return rep, nil
}

// affected is the number of rows res changed.
func affected(res sql.Result) (int, error) {
	n, err := res.RowsAffected()
	return int(n), err
}
