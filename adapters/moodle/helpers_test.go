package moodle

import (
	"bytes"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
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

// memSink is the kit's in-memory sink: it keeps the cursor and dedupes
// identical completions per pair, as the outbox does.
type memSink = kittest.Sink

var newMemSink = kittest.NewSink

// results returns the current completion of every pair of sink, sorted,
// rendered as short strings for readable assertions.
func results(sink *memSink) []string {
	var out []string
	for _, c := range sink.Latest() {
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
