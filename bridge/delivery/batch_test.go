package delivery_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// singleStore hides the SQLite store's FinishBatch: the dispatcher records
// each outcome with its own Finish.
type singleStore struct{ delivery.Store }

// brokenStore fails to record any outcome, singly or in a batch, as a store
// whose disk or server went away does; claims and releases still work.
type brokenStore struct{ delivery.Store }

var errStoreGone = errors.New("disk I/O error")

func (brokenStore) Finish(context.Context, outbox.Finish) error { return errStoreGone }

// brokenBatchStore is brokenStore with a FinishBatch that fails too.
type brokenBatchStore struct{ brokenStore }

func (brokenBatchStore) FinishBatch(context.Context, []outbox.Finish) ([]error, error) {
	return nil, errStoreGone
}

var _ outbox.BatchFinisher = brokenBatchStore{}

func (e *env) dispatcherOn(store delivery.Store, s delivery.Settings, ahead int) *delivery.Dispatcher {
	e.t.Helper()
	signer, err := sign.NewSigner(sign.SHA512, []byte(secret))
	require.NoError(e.t, err)
	s.RecordAhead = ahead
	d, err := delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer, Settings: s}, store, delivery.Options{
		Clock: e.clk, Jitter: zeroJitter, Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Owner: "w1",
	})
	require.NoError(e.t, err)
	return d
}

// TestBatchedAndSingleRecordingAgree: with and without FinishBatch, every
// outcome of a step is recorded once, with one attempt, and the lease is
// cleared.
func TestBatchedAndSingleRecordingAgree(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		store func(*env) delivery.Store
		ahead int
	}{
		{"batched", func(e *env) delivery.Store { return e.store }, 0},
		{"batched, recording ahead", func(e *env) delivery.Store { return e.store }, 4},
		{"single", func(e *env) delivery.Store { return singleStore{e.store} }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, ok)
			ids := e.enqueueN(30)
			s := testSettings()
			s.Concurrency, s.Batch = 3, 40
			assert.Equal(t, 30, e.runDue(e.dispatcherOn(tc.store(e), s, tc.ahead)))
			for _, id := range ids {
				it, attempts := e.get(id)
				assert.Equal(t, outbox.StateDelivered, it.State)
				assert.Empty(t, it.LeaseOwner)
				assert.Len(t, attempts, 1)
			}
			assert.Equal(t, 30, e.cv.count(), "each sent once")
		})
	}
}

// TestStoreFailureStopsSending: when outcomes cannot be recorded, the
// workers stop sending as soon as they learn of it, the step reports the
// store's error, and the rows not sent are handed back. Without
// RecordAhead each worker learns before its next request, batch or not;
// with RecordAhead n, within n further requests.
func TestStoreFailureStopsSending(t *testing.T) {
	t.Parallel()
	const workers, rows = 3, 60
	tests := []struct {
		name  string
		store func(*env) delivery.Store
		ahead int
		bound int
	}{
		{"single", func(e *env) delivery.Store { return brokenStore{e.store} }, 0, workers},
		{"batched", func(e *env) delivery.Store { return brokenBatchStore{brokenStore{e.store}} }, 0, workers},
		{"batched, recording ahead", func(e *env) delivery.Store { return brokenBatchStore{brokenStore{e.store}} }, 4, workers * 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, ok)
			ids := e.enqueueN(rows)
			s := testSettings()
			s.Concurrency, s.Batch = workers, rows
			_, err := e.dispatcherOn(tc.store(e), s, tc.ahead).RunDue(e.ctx)
			require.ErrorIs(t, err, errStoreGone)
			assert.ErrorContains(t, err, "recording the outcome of result")
			sent := e.cv.count()
			assert.Positive(t, sent)
			assert.LessOrEqual(t, sent, tc.bound, "requests whose outcome could not be recorded")
			pending := 0
			for _, id := range ids {
				if it, _ := e.get(id); it.State == outbox.StatePending {
					pending++
				}
			}
			assert.Equal(t, rows-sent, pending, "every row not sent is handed back")
			logs := e.logs.String()
			assert.Contains(t, logs, `"state":"unrecorded","outcome":"delivered"`, "the log does not claim a state the store lacks")
			assert.NotContains(t, logs, `"state":"delivered"`)
		})
	}
}

// TestRecordAheadMustNotBeNegative: New refuses a negative record_ahead.
func TestRecordAheadMustNotBeNegative(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	signer, err := sign.NewSigner(sign.SHA512, []byte(secret))
	require.NoError(t, err)
	s := testSettings()
	s.RecordAhead = -1
	_, err = delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer, Settings: s},
		e.store, delivery.Options{})
	assert.ErrorContains(t, err, "record_ahead: must be 0 or positive")
}
