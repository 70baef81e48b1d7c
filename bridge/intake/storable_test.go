package intake_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// TestSinkStoresRowsAnyTextColumnTakes: a source row with a NUL byte in
// a cell, and a file name in Latin-1, are committed with the good rows on
// both backends. PostgreSQL's TEXT refuses NUL and invalid UTF-8, and one
// such value used to fail the whole commit at every poll, holding up the
// file and every file after it.
func TestSinkStoresRowsAnyTextColumnTakes(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) outbox.Store{
		"sqlite": func(t *testing.T) outbox.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "outbox.db"))
			require.NoError(t, err)
			return s
		},
		"postgres": func(t *testing.T) outbox.Store {
			s, err := postgres.Open(context.Background(), testdb.Postgres(t))
			require.NoError(t, err)
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store := open(t)
			t.Cleanup(func() { assert.NoError(t, store.Close()) })
			sink := intake.NewSink(store, newRenderer(t), intake.SinkConfig{Connection: "lms", Target: "cv", Logger: quiet})
			ctx := context.Background()

			good := completion("p1")
			good.SourceRef = "resultaten-\xe9t\xe9.csv:2"
			nul := completion("p\x002")
			nul.SourceRef = "resultaten-\xe9t\xe9.csv:3"
			sum, err := sink.Commit(ctx, source.Checkpoint{Marks: []string{"file"}},
				func(add func(result.Completion) error) error {
					for _, c := range []result.Completion{good, nul, completion("p3")} {
						if err := add(c); err != nil {
							return err
						}
					}
					return nil
				})
			require.NoError(t, err, "one bad value must not fail the commit")
			assert.Equal(t, source.Summary{Queued: 2, Rejected: 1}, sum)

			pending, err := store.List(ctx, outbox.Filter{State: outbox.StatePending})
			require.NoError(t, err)
			require.Len(t, pending, 2)
			assert.Equal(t, []string{"p3", "p1"}, []string{pending[0].PersonID, pending[1].PersonID}, "newest first")
			assert.Equal(t, `resultaten-\xE9t\xE9.csv:2`, pending[1].SourceRef, "the file name, its Latin-1 bytes escaped")

			rejected, err := store.List(ctx, outbox.Filter{State: outbox.StateRejected})
			require.NoError(t, err)
			require.Len(t, rejected, 1)
			assert.Equal(t, `p\x002`, rejected[0].PersonID, "the operator sees where the NUL was")
			assert.Equal(t, `resultaten-\xE9t\xE9.csv:3`, rejected[0].SourceRef)
			assert.NotEmpty(t, rejected[0].LastError)
		})
	}
}
