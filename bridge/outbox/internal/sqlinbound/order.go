package sqlinbound

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The ordering rule of enrolments and unenrolments: the last request
// Coachview sent for a (person, Elearningcode) pair decides the pair's final
// state, whichever path (the link, a webhook) it came by and however the
// LMS answered the earlier ones. Persons are compared by the person_key
// stored with each message, source.PersonKey of its id (case-insensitively,
// as Coachview does, and as the outbox and the enrolment list compare
// them). The rule is kept in four places:
//
//   - saving a request (new, or a finished one rearmed) supersedes the
//     pair's other pending messages that nobody is carrying out: they are
//     older, and never carried out after it;
//   - a pending message another one is carrying out (leased) cannot be
//     stopped; the newer waits: neither claim takes a message while an
//     older one of its pair is leased;
//   - a leased message whose attempt ends in a retry is superseded instead
//     when a newer message of its pair is pending;
//   - a repeated request is answered from its first outcome while that is
//     still the pair's state (see countRequest).

// pairPredicate says that inbound message o is an enrolment or unenrolment
// of the same pair as message m; both aliases are bound by the caller.
const pairPredicate = `o.action IN ('enrol', 'unenrol') AND m.action IN ('enrol', 'unenrol')
	AND o.person_key = m.person_key AND o.elearningcode = m.elearningcode AND o.id <> m.id`

// olderInFlight is a condition on message m: another message of its pair is
// pending and leased until after the bound time parameter.
const olderInFlight = `EXISTS (SELECT 1 FROM inbound_messages o WHERE o.state = 'pending' AND ` + pairPredicate + `
	AND o.lease_owner <> '' AND o.lease_until > ?)`

// pairRequest is a message just requested, with its pair: the person's key
// (source.PersonKey) and the e-learning code.
type pairRequest struct {
	id           int64
	person, code string
}

// samePair is the condition that a message is of a pair: two placeholders,
// its person key and code.
const samePair = `person_key = ? AND elearningcode = ?`

// supersededBy is the last error of a message superseded by message %d.
const supersededBy = "superseded by message %d, a later request for the same person and e-learning code"

// supersedeOlder supersedes, at now, the pending messages that nobody is
// carrying out of the pairs of rs, each message just requested for its pair
// (one per pair). The pairs are given, not looked up, and each is a range on
// inbound_messages_pending_pair, whatever the size of the backlog: with
// Config.SupersedeSetup (PostgreSQL) one statement for all of rs, an OR of
// the ranges; without (SQLite, in process), one statement per pair.
func (s *Store) supersedeOlder(ctx context.Context, tx *sqlx.Tx, rs []pairRequest, now time.Time) error {
	per := 1
	if s.supersedeSetup != "" && len(rs) > 0 {
		if _, err := tx.ExecContext(ctx, s.supersedeSetup); err != nil {
			return fmt.Errorf("supersede earlier requests of %d pairs: %w", len(rs), err)
		}
		per = len(rs)
	}
	for start := 0; start < len(rs); start += per {
		query, args := supersedeQuery(rs[start:start+per], now.UnixMilli())
		if _, err := tx.ExecContext(ctx, s.q(query), args...); err != nil {
			return fmt.Errorf("supersede earlier requests of %d pairs: %w", per, err)
		}
	}
	return nil
}

// supersedeQuery is the statement that supersedes, at now, the pending
// messages nobody is carrying out of the pairs of rs, and its arguments.
func supersedeQuery(rs []pairRequest, now int64) (string, []any) {
	var match, reason strings.Builder
	var matchArgs, args []any
	for k, r := range rs {
		if k > 0 {
			match.WriteString(" OR ")
		}
		match.WriteString("(" + samePair + " AND state = 'pending' AND id <> ?)")
		matchArgs = append(matchArgs, r.person, r.code, r.id)
		reason.WriteString(" WHEN " + samePair + " THEN ?")
		args = append(args, r.person, r.code, fmt.Sprintf(supersededBy, r.id))
	}
	args = append(append(append(args, now), matchArgs...), now)
	return `UPDATE inbound_messages
		SET state = 'superseded', next_attempt_at = NULL, lease_owner = '', lease_until = NULL,
			last_error = CASE` + reason.String() + ` END, updated_at = ?
		WHERE (` + match.String() + `) AND action IN ('enrol', 'unenrol') AND (lease_owner = '' OR lease_until <= ?)`, args
}

// stillCurrent reports whether the done message id is what its pair last
// became: the enrolment list names it as the entry's last change, and no
// other request of the pair is pending.
func (s *Store) stillCurrent(ctx context.Context, tx *sqlx.Tx, id int64) (bool, error) {
	var pair struct {
		PersonKey     string `db:"person_key"`
		ElearningCode string `db:"elearningcode"`
		Others        int    `db:"others"`
	}
	err := tx.GetContext(ctx, &pair, s.q(`SELECT m.person_key, m.elearningcode,
		(SELECT count(*) FROM inbound_messages o WHERE o.state = 'pending' AND `+pairPredicate+`) AS others
		FROM inbound_messages m WHERE m.id = ?`), id)
	if err != nil {
		return false, fmt.Errorf("look up whether message %d still decides its pair: %w", id, err)
	}
	if pair.Others > 0 {
		return false, nil
	}
	var n int
	if err := tx.GetContext(ctx, &n, s.q(`SELECT count(*) FROM enrolments
		WHERE person_key = ? AND elearningcode = ? AND message_id = ?`),
		pair.PersonKey, strings.TrimSpace(pair.ElearningCode), id); err != nil {
		return false, fmt.Errorf("look up whether message %d still decides its pair: %w", id, err)
	}
	return n > 0, nil
}

// supersedeIfNewer supersedes the pending message id at now when a newer
// message of its pair is pending: its retry would undo the newer request.
func (s *Store) supersedeIfNewer(ctx context.Context, tx *sqlx.Tx, id int64, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`UPDATE inbound_messages AS m
		SET state = 'superseded', next_attempt_at = NULL, last_error = ?, updated_at = ?
		WHERE m.id = ? AND m.state = 'pending'
			AND EXISTS (SELECT 1 FROM inbound_messages o WHERE o.state = 'pending' AND `+pairPredicate+`)`),
		"superseded by a later request for the same person and e-learning code, which decides", now.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("supersede message %d: %w", id, err)
	}
	return nil
}
