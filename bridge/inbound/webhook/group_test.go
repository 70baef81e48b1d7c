package webhook

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/internal/fakes"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
)

// Both outbox backends commit concurrent webhooks together.
var (
	_ BatchSaver = (*sqlite.Store)(nil)
	_ BatchSaver = (*postgres.Store)(nil)
)

// gatedStore is a real SQLite store whose first SaveMessages waits for
// gate, so that a test can line messages up behind a running transaction.
type gatedStore struct {
	*sqlite.Store
	gate   chan struct{}
	groups chan int // the size of each SaveMessages call, in order
	calls  atomic.Int32
}

func (s *gatedStore) SaveMessages(ctx context.Context, ms []inboundstore.Message, dup inboundstore.Duplicate) ([]inboundstore.Message, []inboundstore.SaveOutcome, error) {
	s.groups <- len(ms)
	if s.calls.Add(1) == 1 {
		<-s.gate
	}
	return s.Store.SaveMessages(ctx, ms, dup)
}

// enrolment is a valid pending message with dedupe key key.
func enrolment(key string) inboundstore.Message {
	return inboundstore.Message{Source: "webhook:cv", DedupeKey: key, Verified: inboundstore.VerifiedSignature,
		Event: "deelnemer.aangemeld", Body: []byte(`{}`), Action: inboundstore.ActionEnrol, PersonID: "p-" + key,
		ElearningCode: "E1", State: inboundstore.StatePending}
}

// lineUp starts the first of ms saving, holds its transaction until the
// others are queued behind it, and returns each one's result once the gate
// is opened.
func lineUp(t *testing.T, g *groupCommit, s *gatedStore, ms []inboundstore.Message) []saveResult {
	t.Helper()
	results := make([]chan saveResult, len(ms))
	for i := range results {
		results[i] = make(chan saveResult, 1)
	}
	go func() { results[0] <- g.save(ms[0]) }()
	require.Equal(t, 1, <-s.groups, "the first message is saved at once, alone")
	for i := 1; i < len(ms); i++ {
		go func() { results[i] <- g.save(ms[i]) }()
	}
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue) == len(ms)-1
	}, 10*time.Second, time.Millisecond)
	select {
	case <-results[0]:
		t.Fatal("the first request was answered before its transaction committed")
	case <-time.After(20 * time.Millisecond):
	}
	close(s.gate)
	out := make([]saveResult, len(ms))
	for i, c := range results {
		out[i] = <-c
	}
	return out
}

func TestGroupCommitSavesQueuedMessagesTogether(t *testing.T) {
	t.Parallel()
	store := fakes.Store(t, nil)
	s := &gatedStore{Store: store, gate: make(chan struct{}), groups: make(chan int, 10)}
	g := &groupCommit{batch: s, single: store}
	ms := []inboundstore.Message{enrolment("k0")}
	for i := 1; i < 10; i++ {
		ms = append(ms, enrolment(fmt.Sprintf("k%d", i)))
	}
	ms = append(ms, enrolment("k3")) // a resend beside its original
	res := lineUp(t, g, s, ms)
	assert.Equal(t, len(ms)-1, <-s.groups, "the messages queued meanwhile are saved in one transaction")
	ids := map[int64]bool{}
	for i, r := range res {
		require.NoError(t, r.err, "message %d", i)
		assert.Equal(t, ms[i].DedupeKey, r.m.DedupeKey)
		ids[r.m.ID] = true
	}
	// The two requests for k3 queue in either order: whichever is saved
	// second finds the first, in the same transaction.
	first, again := res[3], res[len(ms)-1]
	if first.outcome == inboundstore.Existed {
		first, again = again, first
	}
	assert.NotEqual(t, inboundstore.Existed, first.outcome)
	assert.Equal(t, inboundstore.Existed, again.outcome, "the resend finds its original")
	assert.Equal(t, first.m.ID, again.m.ID)
	assert.Equal(t, 2, again.m.Requests)
	assert.Len(t, ids, 10)
	stored, err := store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Len(t, stored, 10)
}

func TestGroupCommitRefusedGroupSavesEachAlone(t *testing.T) {
	t.Parallel()
	store := fakes.Store(t, nil)
	s := &gatedStore{Store: store, gate: make(chan struct{}), groups: make(chan int, 10)}
	g := &groupCommit{batch: s, single: store}
	bad := enrolment("bad")
	bad.State = "sending" // refused by the store: the whole group fails
	res := lineUp(t, g, s, []inboundstore.Message{enrolment("first"), enrolment("a"), bad, enrolment("b")})
	require.NoError(t, res[0].err)
	require.NoError(t, res[1].err, "a message beside a refused one is saved alone")
	require.Error(t, res[2].err, "the refused message fails its own request only")
	require.NoError(t, res[3].err)
	stored, err := store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Len(t, stored, 3)
}
