package daemon_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// TestRetentionPurge: delivered history older than storage.retention is
// purged when the daemon runs; pending results and newer history are kept.
func TestRetentionPurge(t *testing.T) {
	cfg := loadConfig(t, `storage:
  retention: 720h
targets:
  cv:
    url: http://127.0.0.1:1/r
    secret_file: secret
`)

	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	ctx := context.Background()
	store, err := daemon.OpenStore(ctx, cfg, clk)
	require.NoError(t, err)
	enqueue := func(person string) {
		require.NoError(t, store.InTx(ctx, func(tx outbox.Tx) error {
			_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "c", ElearningCode: "E", PersonID: person, Body: []byte("<x/>" + person)}, outbox.EnqueuePolicy{})
			return err
		}))
	}
	deliver := func() {
		items, err := store.Claim(ctx, "cv", "test", 10, clk.Now(), time.Minute)
		require.NoError(t, err)
		for _, it := range items {
			require.NoError(t, store.Finish(ctx, outbox.Finish{ID: it.ID, Owner: "test", State: outbox.StateDelivered,
				Attempt: outbox.Attempt{At: clk.Now(), Status: 200, Class: "delivered"}}))
		}
	}
	enqueue("old")
	deliver()
	clk.Advance(40 * 24 * time.Hour)
	enqueue("recent")
	deliver()
	enqueue("waiting")
	require.NoError(t, store.Close())

	d, stop := runWithoutConnections(t, cfg, daemon.Options{Clock: clk})
	erased := func() []string {
		rows, err := d.Store().List(ctx, outbox.Filter{})
		require.NoError(t, err)
		var persons []string
		for _, it := range rows {
			if full, _, err := d.Store().Get(ctx, it.ID); err == nil && full.Body == nil {
				persons = append(persons, it.PersonID)
			}
		}
		return persons
	}
	// The delivered row past the retention stays, as the record that
	// Coachview accepted its pair, with its body erased.
	require.Eventually(t, func() bool { return len(erased()) == 1 }, 10*time.Second, 10*time.Millisecond)
	stop()
	assert.Equal(t, []string{"old"}, erased())
	left, err := d.Store().List(ctx, outbox.Filter{})
	require.NoError(t, err)
	assert.Len(t, left, 3, "no row is deleted")
}

func TestVerdictsOfInboundAnswers(t *testing.T) {
	counted := map[string]int{}
	h := daemon.CountVerdicts(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("done"))
		case "/later":
			w.WriteHeader(http.StatusAccepted)
		case "/who":
			w.WriteHeader(http.StatusUnauthorized)
		case "/bad":
			w.WriteHeader(http.StatusUnprocessableEntity)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}), func(v string) { counted[v]++ })
	for _, p := range []string{"/ok", "/ok", "/later", "/who", "/bad", "/boom"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, p, nil))
	}
	assert.Equal(t, map[string]int{"done": 2, "accepted": 1, "unauthorized": 1, "invalid": 1, "error": 1}, counted)
}

// runWithoutConnections opens a daemon on cfg, which names no LMS
// connection, with opts (logging discarded unless opts has a logger), and
// runs it until the returned stop is called; stop checks that Run ended
// cleanly, and the test's end closes the daemon.
func runWithoutConnections(t *testing.T, cfg *config.Config, opts daemon.Options) (*daemon.Daemon, func()) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := daemon.Open(context.Background(), cfg, func(*config.Config, *config.Connection) (source.Built, error) {
		t.Fatal("no connections are configured")
		return source.Built{}, nil
	}, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return d, func() {
		cancel()
		require.NoError(t, <-done)
	}
}

// loadConfig loads the main configuration text doc from a fresh directory
// that also holds an empty lms.d and the file "secret" its targets name.
func loadConfig(t *testing.T, doc string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "lms.d"), 0o755))
	cfgPath := filepath.Join(dir, "cvbridge.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(doc), 0o644))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	return cfg
}
