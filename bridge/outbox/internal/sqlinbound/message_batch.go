package sqlinbound

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// insertColumns are the columns a new message is inserted with, one
// placeholder each in insertRow's order.
const insertColumns = `source, dedupe_key, received_at, verified, event, body, action, person_id, person_key,
	elearningcode, first_name, infix, last_name, email, state, next_attempt_at, last_error, updated_at`

// insertChunk bounds the messages of one INSERT statement (18 parameters
// each: far below SQLite's 32,766 and PostgreSQL's 65,535).
const insertChunk = 500

// SaveMessages stores the messages ms in one transaction (one commit, one
// fsync on SQLite, for all of them), each as SaveMessage stores one: a
// message whose Source and DedupeKey are taken, by a stored message or by
// an earlier one of ms, counts a request of that message and is left to
// dup. It returns each message as stored once the transaction committed,
// with its outcome, in the order of ms. Either every message is saved or,
// with the error, none: one invalid message fails them all.
//
// The webhook receiver uses it to commit the messages of concurrent
// requests together (webhook.BatchSaver).
func (s *Store) SaveMessages(ctx context.Context, ms []inboundstore.Message, dup inboundstore.Duplicate) ([]inboundstore.Message, []inboundstore.SaveOutcome, error) {
	for _, m := range ms {
		if err := checkNewMessage(m); err != nil {
			return nil, nil, fmt.Errorf("save inbound message from %q: %w", m.Source, err)
		}
	}
	if len(ms) == 0 {
		return nil, nil, nil
	}
	now := s.now()
	ids := make([]int64, len(ms))
	outcomes := make([]inboundstore.SaveOutcome, len(ms))
	var rows []MessageRow
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Insert the first message of each source and dedupe key in as few
		// statements as possible; the rest, already stored or repeating an
		// earlier message of ms (a resend arriving beside the original), count
		// a request of the stored message instead.
		first := map[messageKey]int{}
		var fresh []int
		for i, m := range ms {
			k := messageKey{m.Source, m.DedupeKey}
			if _, seen := first[k]; !seen {
				first[k] = i
				fresh = append(fresh, i)
			}
		}
		inserted := map[messageKey]int64{}
		for start := 0; start < len(fresh); start += insertChunk {
			if err := s.insertMessages(ctx, tx, ms, fresh[start:min(start+insertChunk, len(fresh))], now, inserted); err != nil {
				return err
			}
		}
		for i, m := range ms {
			k := messageKey{m.Source, m.DedupeKey}
			if id, ok := inserted[k]; ok && first[k] == i {
				ids[i], outcomes[i] = id, inboundstore.Inserted
				continue
			}
			var err error
			if ids[i], outcomes[i], err = s.countRequest(ctx, tx, m, dup, now); err != nil {
				return err
			}
		}
		// The ordering rule (order.go): a new or rearmed request of a pair
		// supersedes the pair's older pending ones; of several in ms, the
		// last one does, the earlier ones among them included.
		var latest []pairRequest
		at := map[pairRequest]int{}
		for i, m := range ms {
			if outcomes[i] == inboundstore.Existed || m.State != inboundstore.StatePending {
				continue
			}
			if m.Action != inboundstore.ActionEnrol && m.Action != inboundstore.ActionUnenrol {
				continue
			}
			r := pairRequest{id: ids[i], person: source.PersonKey(m.PersonID), code: m.ElearningCode}
			key := pairRequest{person: r.person, code: r.code}
			if j, ok := at[key]; ok {
				latest[j] = r
				continue
			}
			at[key] = len(latest)
			latest = append(latest, r)
		}
		for start := 0; start < len(latest); start += insertChunk {
			if err := s.supersedeOlder(ctx, tx, latest[start:min(start+insertChunk, len(latest))], now); err != nil {
				return err
			}
		}
		query, args, err := sqlx.In(`SELECT `+MessageCols+` FROM inbound_messages WHERE id IN (?)`, ids)
		if err != nil {
			return err
		}
		return tx.SelectContext(ctx, &rows, s.q(query), args...)
	})
	if err != nil {
		if len(ms) == 1 {
			return nil, nil, fmt.Errorf("save inbound message from %q: %w", ms[0].Source, err)
		}
		return nil, nil, fmt.Errorf("save %d inbound messages in one transaction: %w", len(ms), err)
	}
	byID := make(map[int64]inboundstore.Message, len(rows))
	for _, r := range rows {
		byID[r.ID] = r.Message()
	}
	saved := make([]inboundstore.Message, len(ms))
	for i, id := range ids {
		saved[i] = byID[id]
	}
	return saved, outcomes, nil
}

// messageKey is what identifies a message: its source and dedupe key.
type messageKey struct{ source, key string }

// insertMessages inserts the messages ms[which] (checked, with distinct
// keys) at now in one statement, skipping those whose key is stored, and
// adds the ids of the inserted ones to inserted.
func (s *Store) insertMessages(ctx context.Context, tx *sqlx.Tx, ms []inboundstore.Message, which []int, now time.Time, inserted map[messageKey]int64) error {
	row := "(" + strings.Repeat("?, ", strings.Count(insertColumns, ",")) + "?)"
	var (
		values strings.Builder
		args   []any
	)
	for n, i := range which {
		if n > 0 {
			values.WriteString(", ")
		}
		values.WriteString(row)
		args = append(args, insertArgs(ms[i], now)...)
	}
	var rows []struct {
		ID        int64  `db:"id"`
		Source    string `db:"source"`
		DedupeKey string `db:"dedupe_key"`
	}
	if err := tx.SelectContext(ctx, &rows, s.q(`INSERT INTO inbound_messages (`+insertColumns+`) VALUES `+values.String()+`
		ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id, source, dedupe_key`), args...); err != nil {
		return err
	}
	for _, r := range rows {
		inserted[messageKey{r.Source, r.DedupeKey}] = r.ID
	}
	return nil
}

// insertArgs are the values of insertColumns for the new message m at now.
func insertArgs(m inboundstore.Message, now time.Time) []any {
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	var next sql.NullInt64
	if m.State == inboundstore.StatePending {
		next = sqlcore.Millis(now)
		if !m.NextAttemptAt.IsZero() {
			next = sqlcore.Millis(m.NextAttemptAt)
		}
	}
	body := m.Body
	if len(body) > inboundstore.MaxBody {
		body = body[:inboundstore.MaxBody]
	}
	return []any{m.Source, m.DedupeKey, m.ReceivedAt.UnixMilli(), m.Verified, m.Event, body,
		string(m.Action), m.PersonID, source.PersonKey(m.PersonID), m.ElearningCode, m.FirstName, m.Infix, m.LastName, m.Email,
		string(m.State), next, inboundstore.Clip(m.LastError, inboundstore.MaxError), now.UnixMilli()}
}

// countRequest counts a request of the stored message with m's source and
// dedupe key at now, rearming it if dup says so, and returns its id and
// what it did.
//
// With Rearm, a failed or superseded message is made pending again. A done
// one is too, unless its outcome is still its pair's state: it is the
// message that last changed the pair in the enrolment list and no other
// request of the pair is pending. Then the repeat is answered from the first
// outcome (Existed), not carried out again.
func (s *Store) countRequest(ctx context.Context, tx *sqlx.Tx, m inboundstore.Message, dup inboundstore.Duplicate, now time.Time) (int64, inboundstore.SaveOutcome, error) {
	var row struct {
		ID    int64  `db:"id"`
		State string `db:"state"`
	}
	if err := tx.GetContext(ctx, &row, s.q(`SELECT id, state FROM inbound_messages WHERE source = ? AND dedupe_key = ?`+s.rowLock), m.Source, m.DedupeKey); err != nil {
		return 0, 0, err
	}
	outcome := inboundstore.Existed
	set := `requests = requests + 1, updated_at = ?`
	args := []any{now.UnixMilli()}
	rearm := false
	if dup == inboundstore.Rearm {
		switch inboundstore.State(row.State) {
		case inboundstore.StateFailed, inboundstore.StateSuperseded:
			rearm = true
		case inboundstore.StateDone:
			current, err := s.stillCurrent(ctx, tx, row.ID)
			if err != nil {
				return 0, 0, err
			}
			rearm = !current
		}
	}
	if rearm {
		outcome = inboundstore.Rearmed
		set += `, state = 'pending', attempts = 0, next_attempt_at = ?, last_error = ''`
		args = append(args, now.UnixMilli())
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE inbound_messages SET `+set+` WHERE id = ?`), append(args, row.ID)...); err != nil {
		return 0, 0, err
	}
	return row.ID, outcome, nil
}
