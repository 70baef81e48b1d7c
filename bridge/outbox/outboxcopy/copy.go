// Package outboxcopy moves a whole outbox from one store to another below the
// Store interface: every result in every state with its id, attempts and
// timestamps, every cursor and mark, every target's state, and the inbound
// side kept in the same database: every inbound message (pending enrolment
// requests, finished and erased ones), every OAuth code and token record
// with which Coachview holds a grant, and the enrolment list. It is how a provider who outgrows one
// server moves from SQLite to PostgreSQL without losing a result, an
// enrolment request or Coachview's authorisation, and without re-reading an
// LMS. The daemons' leases (the leases table) are not copied: they belong to
// running daemons, and no daemon may run on either store during a copy.
//
// The package owns the copy's order, batching and verification; the stores
// own the SQL, by implementing Source (SQLite) and Sink (PostgreSQL).
package outboxcopy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// DefaultBatchSize is how many rows Copy reads and writes at a time when
// Options.BatchSize is zero. Only one batch is held in memory.
const DefaultBatchSize = 1000

// progressEvery is how often (in rows of one table) Copy logs its progress.
const progressEvery = 100_000

// ErrTargetNotEmpty is returned when the target store holds data and the
// copy was not forced.
var ErrTargetNotEmpty = errors.New("the target store is not empty")

// Result is a results row with everything stored about it, including what
// the Item does not show: the pair key and the hash of the body.
type Result struct {
	outbox.Item
	PersonKey string // source.PersonKey(PersonID) as stored: the pair's person key
	BodyHash  []byte // SHA-256 of Body for rows that take part in the pair rule; nil for rejected rows
}

// Cursor is one LMS connection's stored read position.
type Cursor struct {
	Connection string
	Cursor     []byte
	UpdatedAt  time.Time
}

// Mark is one item an LMS connection recorded as handed over.
type Mark struct {
	Connection string
	Mark       string
	CreatedAt  time.Time
}

// Counts describes a store's contents: the rows of each table, results and
// inbound messages per state, and the highest ids ever given out (new rows
// get higher ones).
type Counts struct {
	Results         int64
	Attempts        int64
	Cursors         int64
	Marks           int64
	TargetStates    int64
	InboundMessages int64
	OAuthTokens     int64
	Enrolments      int64                        // entries of the enrolment list
	States          map[outbox.State]int64       // results per state; states without rows may be absent
	InboundStates   map[inboundstore.State]int64 // inbound messages per state; states without rows may be absent
	LastResultID    int64                        // highest result id ever given out, 0 if none
	LastAttemptID   int64                        // highest attempt id given out, 0 if none
	// LastInboundMessageID is the highest inbound message id ever given
	// out, 0 if none. Erased enrolment-link messages are keyed by their id,
	// so an id must never be given out twice.
	LastInboundMessageID int64
	LastOAuthTokenID     int64 // highest OAuth token record id ever given out, 0 if none
}

// Empty reports whether the store holds no rows at all.
func (c Counts) Empty() bool {
	return c.Results == 0 && c.Attempts == 0 && c.Cursors == 0 && c.Marks == 0 && c.TargetStates == 0 &&
		c.InboundMessages == 0 && c.OAuthTokens == 0 && c.Enrolments == 0
}

// String sums c up for an operator.
func (c Counts) String() string {
	return fmt.Sprintf("%d results, %d attempts, %d cursors, %d marks, %d target states, %d inbound messages, %d OAuth token records, %d enrolment list entries",
		c.Results, c.Attempts, c.Cursors, c.Marks, c.TargetStates, c.InboundMessages, c.OAuthTokens, c.Enrolments)
}

// diff lists how got differs from want, empty when they agree.
func diff(want, got Counts) []string {
	var out []string
	check := func(what string, w, g int64) {
		if w != g {
			out = append(out, fmt.Sprintf("%s: source %d, target %d", what, w, g))
		}
	}
	check("results", want.Results, got.Results)
	check("attempts", want.Attempts, got.Attempts)
	check("cursors", want.Cursors, got.Cursors)
	check("marks", want.Marks, got.Marks)
	check("target states", want.TargetStates, got.TargetStates)
	check("inbound messages", want.InboundMessages, got.InboundMessages)
	check("OAuth token records", want.OAuthTokens, got.OAuthTokens)
	check("enrolment list entries", want.Enrolments, got.Enrolments)
	check("last result id", want.LastResultID, got.LastResultID)
	check("last attempt id", want.LastAttemptID, got.LastAttemptID)
	check("last inbound message id", want.LastInboundMessageID, got.LastInboundMessageID)
	check("last OAuth token record id", want.LastOAuthTokenID, got.LastOAuthTokenID)
	for _, st := range outbox.States {
		check(string(st)+" results", want.States[st], got.States[st])
	}
	for _, st := range inboundstore.States {
		check(string(st)+" inbound messages", want.InboundStates[st], got.InboundStates[st])
	}
	return out
}

// Source is a store that can be read in full, below the Store interface.
type Source interface {
	// BeginExport starts reading the store from one consistent snapshot.
	BeginExport(ctx context.Context) (Exporter, error)
}

// Exporter reads one snapshot of a store in pages ordered by key. Each
// method returns up to limit rows after the given key (the zero key starts
// at the beginning); an empty page means there are no more.
type Exporter interface {
	Counts(ctx context.Context) (Counts, error)
	Results(ctx context.Context, afterID int64, limit int) ([]Result, error)
	Attempts(ctx context.Context, afterID int64, limit int) ([]outbox.Attempt, error)
	Cursors(ctx context.Context, afterConnection string, limit int) ([]Cursor, error)
	Marks(ctx context.Context, after Mark, limit int) ([]Mark, error) // ordered by (Connection, Mark)
	TargetStates(ctx context.Context, afterTarget string, limit int) ([]outbox.TargetState, error)
	// InboundMessages returns inbound messages as stored, leases, erasure
	// and raw body (nil where none is kept) included.
	InboundMessages(ctx context.Context, afterID int64, limit int) ([]inboundstore.Message, error)
	// OAuthTokens returns OAuth code and token records as stored (hashes
	// only, as the store keeps them), revoked ones included.
	OAuthTokens(ctx context.Context, afterID int64, limit int) ([]inboundstore.Token, error)
	// Enrolments returns enrolment list entries as stored, ordered by
	// connection, person (case-insensitively) and e-learning code, after
	// the entry with after's Connection, PersonID and ElearningCode.
	Enrolments(ctx context.Context, after inboundstore.Enrolment, limit int) ([]inboundstore.Enrolment, error)
	// Close ends the snapshot.
	Close() error
}

// Sink is a store that can be written in full, below the Store interface.
type Sink interface {
	// BeginImport starts one transaction that holds the store's tables
	// against other writers until it ends.
	BeginImport(ctx context.Context) (Importer, error)
}

// Importer writes rows, as they are (ids and times included), in one
// transaction.
type Importer interface {
	Counts(ctx context.Context) (Counts, error)
	// Clear deletes every row the copy writes (leases stay).
	Clear(ctx context.Context) error
	Results(ctx context.Context, rows []Result) error
	Attempts(ctx context.Context, rows []outbox.Attempt) error
	Cursors(ctx context.Context, rows []Cursor) error
	Marks(ctx context.Context, rows []Mark) error
	TargetStates(ctx context.Context, rows []outbox.TargetState) error
	InboundMessages(ctx context.Context, rows []inboundstore.Message) error
	OAuthTokens(ctx context.Context, rows []inboundstore.Token) error
	Enrolments(ctx context.Context, rows []inboundstore.Enrolment) error
	// SetLastIDs makes new rows get ids above the Last*ID fields of last:
	// results, attempts, inbound messages and OAuth token records.
	SetLastIDs(ctx context.Context, last Counts) error
	Commit() error
	// Rollback undoes everything; after Commit it does nothing.
	Rollback() error
}

// Options tune Copy.
type Options struct {
	// Force lets Copy replace the contents of a target that is not empty.
	// Without it such a target is refused with ErrTargetNotEmpty.
	Force bool
	// BatchSize is how many rows are read and written at a time
	// (DefaultBatchSize when zero).
	BatchSize int
	// Logger receives progress; nil logs nothing.
	Logger *slog.Logger
}

// Report says what Copy did.
type Report struct {
	Copied   Counts // what was copied, as verified in the target
	Replaced Counts // what a forced copy deleted from the target first
}

// Copy copies everything (outbox and inbound tables) from into to, in one transaction of the target,
// from one snapshot of the source, streaming in batches. It refuses a target
// that is not empty unless opts.Force, in which case the target's contents
// are replaced. Before committing it compares the target's counts (rows per
// table and state, highest ids) with the source's, and rolls everything
// back when they differ: the target ends up with a complete copy or as it
// was.
func Copy(ctx context.Context, from Source, to Sink, opts Options) (rep Report, err error) {
	batch := opts.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	exp, err := from.BeginExport(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy outbox: read source: %w", err)
	}
	defer func() {
		if cerr := exp.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("copy outbox: close source snapshot: %w", cerr)
		}
	}()
	src, err := exp.Counts(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy outbox: count source rows: %w", err)
	}

	imp, err := to.BeginImport(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy outbox: write target: %w", err)
	}
	defer func() {
		if rerr := imp.Rollback(); rerr != nil && err == nil {
			err = fmt.Errorf("copy outbox: roll back target: %w", rerr)
		}
	}()
	dst, err := imp.Counts(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy outbox: count target rows: %w", err)
	}
	if !dst.Empty() {
		if !opts.Force {
			return rep, fmt.Errorf("copy outbox: %w (it holds %s): copy into an empty database, or force the copy to replace its contents",
				ErrTargetNotEmpty, dst)
		}
		if err := imp.Clear(ctx); err != nil {
			return rep, fmt.Errorf("copy outbox: clear target: %w", err)
		}
		rep.Replaced = dst
		log.Warn("forced copy: replaced the target's contents", "replaced", dst.String())
	}

	tables := []struct {
		name string
		want int64
		run  func() (int64, error)
	}{
		{"target_state", src.TargetStates, func() (int64, error) {
			return pump(ctx, batch, "", exp.TargetStates, func(s outbox.TargetState) string { return s.Target }, imp.TargetStates, log, "target_state")
		}},
		{"cursors", src.Cursors, func() (int64, error) {
			return pump(ctx, batch, "", exp.Cursors, func(c Cursor) string { return c.Connection }, imp.Cursors, log, "cursors")
		}},
		{"marks", src.Marks, func() (int64, error) {
			return pump(ctx, batch, Mark{}, exp.Marks, func(m Mark) Mark { return Mark{Connection: m.Connection, Mark: m.Mark} }, imp.Marks, log, "marks")
		}},
		{"results", src.Results, func() (int64, error) {
			return pump(ctx, batch, 0, exp.Results, func(r Result) int64 { return r.ID }, imp.Results, log, "results")
		}},
		{"attempts", src.Attempts, func() (int64, error) {
			return pump(ctx, batch, 0, exp.Attempts, func(a outbox.Attempt) int64 { return a.ID }, imp.Attempts, log, "attempts")
		}},
		{"inbound_messages", src.InboundMessages, func() (int64, error) {
			return pump(ctx, batch, 0, exp.InboundMessages, func(m inboundstore.Message) int64 { return m.ID }, imp.InboundMessages, log, "inbound_messages")
		}},
		{"oauth_tokens", src.OAuthTokens, func() (int64, error) {
			return pump(ctx, batch, 0, exp.OAuthTokens, func(t inboundstore.Token) int64 { return t.ID }, imp.OAuthTokens, log, "oauth_tokens")
		}},
		{"enrolments", src.Enrolments, func() (int64, error) {
			return pump(ctx, batch, inboundstore.Enrolment{}, exp.Enrolments, func(e inboundstore.Enrolment) inboundstore.Enrolment {
				return inboundstore.Enrolment{Connection: e.Connection, PersonID: e.PersonID, ElearningCode: e.ElearningCode}
			}, imp.Enrolments, log, "enrolments")
		}},
	}
	for _, tb := range tables {
		n, err := tb.run()
		if err != nil {
			return rep, fmt.Errorf("copy outbox: table %s: %w", tb.name, err)
		}
		if n != tb.want {
			return rep, fmt.Errorf("copy outbox: table %s: read %d rows, the source counted %d", tb.name, n, tb.want)
		}
	}
	if err := imp.SetLastIDs(ctx, src); err != nil {
		return rep, fmt.Errorf("copy outbox: set the target's id sequences: %w", err)
	}
	got, err := imp.Counts(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy outbox: count copied rows: %w", err)
	}
	if d := diff(src, got); len(d) > 0 {
		return rep, fmt.Errorf("copy outbox: the copy does not match the source (%s); nothing was written", strings.Join(d, "; "))
	}
	if err := imp.Commit(); err != nil {
		return rep, fmt.Errorf("copy outbox: commit: %w", err)
	}
	rep.Copied = got
	log.Info("copied outbox", "copied", got.String())
	return rep, nil
}

// pump moves one table in pages of batch rows, ordered by key, and returns
// how many rows it moved.
func pump[T any, K any](ctx context.Context, batch int, start K,
	read func(context.Context, K, int) ([]T, error), key func(T) K,
	write func(context.Context, []T) error, log *slog.Logger, table string) (int64, error) {
	var n int64
	after := start
	for {
		rows, err := read(ctx, after, batch)
		if err != nil {
			return n, fmt.Errorf("read after row %d: %w", n, err)
		}
		if len(rows) == 0 {
			log.Info("copied table", "table", table, "rows", n)
			return n, nil
		}
		if err := write(ctx, rows); err != nil {
			return n, fmt.Errorf("write rows %d to %d: %w", n+1, n+int64(len(rows)), err)
		}
		if (n+int64(len(rows)))/progressEvery > n/progressEvery {
			log.Info("copying table", "table", table, "rows", n+int64(len(rows)))
		}
		n += int64(len(rows))
		after = key(rows[len(rows)-1])
	}
}
