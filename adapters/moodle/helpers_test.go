package moodle

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

const lmsFile = "/etc/cvbridge/lms/academy.yaml"

// testConn is a connection with the settings node of its LMS file.
type testConn struct {
	adapters.Connection
	node *yaml.Node
}

// build builds c's source through the registry, as the core does.
func build(c testConn) (source.Source, error) {
	b, err := adapters.Build("moodle", c.Connection, c.node)
	return b.Source, err
}

// newTestMoodle decodes c's settings as the registry does and builds a
// source with an injected clock and HTTP client (nil for defaults).
func newTestMoodle(c testConn, clk clock.Clock, o *ws.Options) (*Moodle, error) {
	s, err := adapters.Decode("moodle", c.Connection, c.node)
	if err != nil {
		return nil, err
	}
	return newMoodle(c.Connection, *s.(*Settings), clk, o)
}

// connection builds a Connection from the settings part of an LMS file; the
// settings start on line 3 of that file.
func connection(t testing.TB, baseDir, settings string, logs *bytes.Buffer) testConn {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("name: academy\nkind: moodle\nsettings:\n"+settings), &doc))
	root := doc.Content[0]
	var node *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "settings" {
			node = root.Content[i+1]
		}
	}
	if logs == nil {
		logs = &bytes.Buffer{}
	}
	return testConn{adapters.Connection{
		Name: "academy", File: lmsFile, BaseDir: baseDir,
		Location: amsterdam(t), Logger: slog.New(slog.NewTextHandler(&syncWriter{b: logs}, nil)),
	}, node}
}

func amsterdam(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	return loc
}

// syncWriter lets parallel goroutines log into one buffer.
type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// memSink is an in-memory Sink that keeps the cursor and dedupes
// identical completions per pair, as the outbox does.
type memSink struct {
	mu      sync.Mutex
	cursor  []byte
	byPair  map[string]result.Completion
	queued  []result.Completion // every completion that was new or changed, in order
	commits int
	dryRun  bool
	list    []source.Enrolled // the bridge's enrolment list the sink offers
}

var (
	_ source.Sink            = (*memSink)(nil)
	_ source.EnrolmentLister = (*memSink)(nil)
)

func (s *memSink) Enrolments(context.Context) ([]source.Enrolled, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]source.Enrolled(nil), s.list...), nil
}

// record sets the list entry of person and code, as the core does when an
// enrolment or unenrolment is done, with a new Ref.
func (s *memSink) record(person, code string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := int64(len(s.list) + 1)
	for _, e := range s.list {
		ref = max(ref, e.Ref+1)
	}
	for i, e := range s.list {
		if strings.EqualFold(e.PersonID, person) && e.ElearningCode == code {
			s.list[i] = source.Enrolled{PersonID: person, ElearningCode: code, Active: active, Ref: ref}
			return
		}
	}
	s.list = append(s.list, source.Enrolled{PersonID: person, ElearningCode: code, Active: active, Ref: ref})
}

func newMemSink() *memSink { return &memSink{byPair: map[string]result.Completion{}} }

func (s *memSink) DryRun() bool { return s.dryRun }

func (s *memSink) Cursor(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor, nil
}

func (s *memSink) Seen(context.Context, string) (bool, error) { return false, nil }

func (s *memSink) Commit(_ context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	var sum source.Summary
	var staged []result.Completion
	if err := fill(func(c result.Completion) error {
		staged = append(staged, c)
		return nil
	}); err != nil {
		return source.Summary{}, err
	}
	if s.dryRun {
		return source.Summary{}, source.ErrDryRun
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range staged {
		key := c.PersonID + "|" + c.ElearningCode
		if old, ok := s.byPair[key]; ok && old == c {
			sum.Unchanged++
			continue
		}
		s.byPair[key] = c
		s.queued = append(s.queued, c)
		sum.Queued++
	}
	if cp.Cursor != nil {
		s.cursor = cp.Cursor
	}
	s.commits++
	return sum, nil
}

// results returns the current completion of every pair, sorted, rendered
// as short strings for readable assertions.
func (s *memSink) results() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.byPair {
		out = append(out, describe(c))
	}
	sort.Strings(out)
	return out
}

func describe(c result.Completion) string {
	d := ""
	if !c.CompletedAt.IsZero() {
		d = c.CompletedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s %s passed=%t dec=%s text=%s date=%s remark=%s",
		c.PersonID, c.ElearningCode, c.Passed, c.ResultDecimal, c.ResultText, d, c.Remark)
}
