package moodle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func init() {
	adapters.Register("moodle", func() *Settings { s := DefaultSettings(); return &s }, New)
}

var (
	_ source.Source   = (*Moodle)(nil)
	_ source.Checker  = (*Moodle)(nil)
	_ source.Enroller = (*Moodle)(nil)
	_ source.Watcher  = (*Moodle)(nil)
	_ io.Closer       = (*Moodle)(nil)
)

// Moodle is one connection to a Moodle site. It implements source.Source,
// source.Checker, source.Enroller and source.Watcher (an enrolment asks for
// a poll at once). Polls are serialised; the enroller may run beside them.
type Moodle struct {
	name     string
	settings Settings
	loc      *time.Location
	log      *slog.Logger
	clock    clock.Clock

	dsn     string      // database mode
	client  *ws.Client  // nil without url/token
	courses courseCache // what the web services said of courses

	pollMu sync.Mutex // serialises polls
	dbMu   sync.Mutex // guards db
	db     *sqlx.DB   // opened by the first database poll or check

	trackMu sync.Mutex // guards tracks
	// tracks holds enrolments the enroller made or removed since the last
	// committed web-service poll, which merges them into its cursor.
	tracks map[[2]int64]trackChange

	wakeMu sync.Mutex
	wake   func() // the runner's, while Watch runs
}

// trackChange is an enrolment the enroller made (add) or removed.
type trackChange struct {
	add            bool
	person, course string
}

// New builds a Moodle source from a connection's validated settings. It
// reads the DSN and token but does not connect: that starts with Poll,
// Check or Enrol.
func New(c adapters.Connection, s *Settings) (source.Source, error) {
	return newMoodle(c, *s, clock.System{}, nil)
}

// newMoodle builds a source with an injected clock and HTTP client (nil for defaults).
func newMoodle(c adapters.Connection, s Settings, clk clock.Clock, o *ws.Options) (*Moodle, error) {
	loc := c.Location
	if loc == nil {
		loc = time.UTC
	}
	var err error
	m := &Moodle{name: c.Name, settings: s, loc: loc, log: c.Logger, clock: clk, tracks: map[[2]int64]trackChange{}}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("adapter", "moodle")
	if s.Mode == modeDatabase {
		if m.dsn, err = kit.ReadSecret(c.BaseDir, s.DSNFile, s.DSNEnv); err != nil {
			return nil, kit.At(secretKey("dsn", s.DSNEnv), err)
		}
	}
	if s.URL != "" {
		token, err := kit.ReadSecret(c.BaseDir, s.TokenFile, s.TokenEnv)
		if err != nil {
			return nil, kit.At(secretKey("token", s.TokenEnv), err)
		}
		opts := ws.Options{Concurrency: s.Concurrency}
		if o != nil {
			opts.HTTPClient = o.HTTPClient
		}
		if m.client, err = ws.New(s.URL, token, opts); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func secretKey(base, env string) string {
	if env != "" {
		return base + "_env"
	}
	return base + "_file"
}

// Poll reads new completions: from the database in database mode, from the
// known enrolments in webservice mode.
func (m *Moodle) Poll(ctx context.Context, sink source.Sink) error {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	if m.settings.Mode == modeDatabase {
		return m.pollDatabase(ctx, sink)
	}
	return m.pollWebService(ctx, sink)
}

// Check verifies the connection for `cvbridge check`. In database mode:
// the database answers, the tables and columns read exist and may be read,
// and the mapping fields (custom profile field, courses table) exist.
// Whenever a url is set: the token is valid, its external service allows
// every function this connection calls, the token's user can see the
// person field of a known user (check_username) and the course field. It
// reports every problem it finds, each with what to fix, in one error.
func (m *Moodle) Check(ctx context.Context) ([]string, error) {
	var notes []string
	var problems []error
	if m.settings.Mode == modeDatabase {
		n, p := m.checkDatabase(ctx)
		notes, problems = append(notes, n...), append(problems, p...)
	}
	if m.client != nil {
		n, p := m.checkWebService(ctx)
		notes, problems = append(notes, n...), append(problems, p...)
	}
	if !m.settings.since.IsZero() {
		notes = append(notes, fmt.Sprintf("since: completions before %s are never sent", m.settings.since.In(m.loc).Format(time.RFC3339)))
	}
	switch len(problems) {
	case 0:
		return notes, nil
	case 1:
		return notes, problems[0]
	}
	return notes, fmt.Errorf("%d problems:\n%w", len(problems), errors.Join(problems...))
}

// Watch keeps the runner's wake function while ctx lasts, so that in
// webservice mode a successful Enrol asks for a poll at once: that poll
// commits the new enrolment to the cursor (see the package documentation).
func (m *Moodle) Watch(ctx context.Context, wake func()) error {
	m.wakeMu.Lock()
	m.wake = wake
	m.wakeMu.Unlock()
	<-ctx.Done()
	m.wakeMu.Lock()
	m.wake = nil
	m.wakeMu.Unlock()
	return nil
}

// askPoll wakes the runner, when it watches this source.
func (m *Moodle) askPoll() {
	m.wakeMu.Lock()
	wake := m.wake
	m.wakeMu.Unlock()
	if wake != nil {
		wake()
	}
}

// Close closes the database connection, if one was opened.
func (m *Moodle) Close() error {
	m.dbMu.Lock()
	defer m.dbMu.Unlock()
	if m.db == nil {
		return nil
	}
	err := m.db.Close()
	m.db = nil
	return err
}

// commit commits one batch and tolerates a dry-run sink, which shows the
// batch and stores nothing. It reports whether the batch was really stored.
func commit(ctx context.Context, sink source.Sink, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, bool, error) {
	sum, err := sink.Commit(ctx, cp, fill)
	if errors.Is(err, source.ErrDryRun) {
		return sum, false, nil
	}
	if err != nil {
		return sum, false, err
	}
	return sum, true, nil
}

// reporter gathers the problems of one poll and logs each user or course
// once, by Moodle id (never by name), when the poll ends.
type reporter struct {
	counts map[problem]int
}

func newReporter() *reporter { return &reporter{counts: map[problem]int{}} }

func (r *reporter) add(p problem) { r.counts[p]++ }

func (r *reporter) log(log *slog.Logger) {
	keys := make([]problem, 0, len(r.counts))
	for p := range r.counts {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Subject != keys[j].Subject {
			return keys[i].Subject < keys[j].Subject
		}
		if keys[i].ID != keys[j].ID {
			return keys[i].ID < keys[j].ID
		}
		return keys[i].Reason < keys[j].Reason
	})
	for _, p := range keys {
		log.Warn(fmt.Sprintf("moodle %s %s; its completions wait and are sent once it is fixed", p.Subject, p.Reason),
			p.Subject+"_id", p.ID, "completions", r.counts[p])
	}
}
