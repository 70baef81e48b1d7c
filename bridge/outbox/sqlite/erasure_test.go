package sqlite_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// TestErasureErasesBytes reads the database file and its write-ahead log as
// bytes, the way someone who copies them would: after `forget` and after the
// retention erasure, the e-mail addresses, names and XML bodies they erased
// are in neither. Clearing columns alone left them in free pages and in
// the log's old frames.
func TestErasureErasesBytes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := open(t, path, clk)

	save := func(key, email string) int64 {
		m, _, err := s.SaveMessage(ctx, inboundstore.Message{
			Source: "webhook:cv", DedupeKey: key, Verified: inboundstore.VerifiedSignature, Event: "deelnemer.aangemeld",
			Body: []byte(`{"Email":"` + email + `"}`), Action: inboundstore.ActionEnrol, PersonID: "p-" + key,
			ElearningCode: "E1", FirstName: "Geheimvoornaam" + key, LastName: "Geheimachternaam" + key, Email: email,
			State: inboundstore.StatePending,
		}, inboundstore.KeepExisting)
		require.NoError(t, err)
		ms, err := s.ClaimMessages(ctx, "w", 10, clk.Now(), time.Minute)
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.NoError(t, s.FinishMessage(ctx, inboundstore.Finish{ID: m.ID, Owner: "w", State: inboundstore.StateDone, At: clk.Now()}))
		return m.ID
	}
	save("forgotten", "forgotten-person@example.org")
	save("expired", "expired-person@example.org")
	save("kept", "kept-person@example.org")
	// A delivered result of the forgotten person: its XML goes too.
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "E1", PersonID: "p-forgotten",
			Body: []byte(`<CoachviewResultaat Opmerking="Geheimeopmerking"/>`)}, outbox.EnqueuePolicy{})
		return err
	}))
	items, err := s.Claim(ctx, "cv", "w", 1, clk.Now(), time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Finish(ctx, outbox.Finish{ID: items[0].ID, Owner: "w", State: outbox.StateDelivered, Attempt: outbox.Attempt{Status: 200}}))

	files := func() []byte {
		var all []byte
		for _, p := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(p)
			if !os.IsNotExist(err) {
				require.NoError(t, err)
			}
			all = append(all, b...)
		}
		return all
	}
	require.True(t, bytes.Contains(files(), []byte("forgotten-person@example.org")), "the test sees the address before")

	_, err = s.ForgetPerson(ctx, "p-forgotten")
	require.NoError(t, err)
	clk.Advance(time.Hour)
	save("late", "late-person@example.org") // finished after the cutoff: kept
	n, err := s.ErasePersonalData(ctx, clk.Now().Add(-time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "expired and kept, finished before the cutoff")

	b := files()
	for _, gone := range []string{"forgotten-person@example.org", "Geheimvoornaamforgotten", "Geheimeopmerking",
		"expired-person@example.org", "Geheimachternaamexpired", "kept-person@example.org"} {
		assert.False(t, bytes.Contains(b, []byte(gone)), "%q is still in the files", gone)
	}
	assert.True(t, bytes.Contains(b, []byte("late-person@example.org")), "what is not erased yet stays")
	info, err := os.Stat(path + "-wal")
	if err == nil {
		assert.Less(t, info.Size(), int64(64<<10), "the log was truncated: %s", strings.TrimSpace(info.Name()))
	}
}

// TestScrubWithAReaderInTheWay: another client holding an old snapshot
// (the sqlite3 shell in a transaction, a backup) keeps the log from being
// truncated. The erasure is done all the same and says so; the checkpoint
// gives up after a second instead of holding up the daemon's writers.
func TestScrubWithAReaderInTheWay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := open(t, path, clock.System{})
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "E1", PersonID: "p1", Body: []byte("<x/>")}, outbox.EnqueuePolicy{})
		return err
	}))
	reader := raw(t, path)
	rtx, err := reader.BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = rtx.Rollback() }()
	var n int
	require.NoError(t, rtx.GetContext(ctx, &n, `SELECT COUNT(*) FROM results`))
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error { // a commit the reader does not see
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "E1", PersonID: "p2", Body: []byte("<y/>")}, outbox.EnqueuePolicy{})
		return err
	}))

	rep, err := s.ForgetPerson(ctx, "p1")
	require.NoError(t, err, "the erasure itself is done")
	assert.Contains(t, rep.NotScrubbed, "another reader kept it busy")
	require.NoError(t, rtx.Rollback())
	assert.NoError(t, s.Scrub(ctx), "once the reader is gone the log is truncated")
}
