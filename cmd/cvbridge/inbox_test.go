package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
)

// inboxFixture is a configuration whose SQLite store holds inbound
// messages, OAuth records and a delivered result.
type inboxFixture struct {
	cfg                             string
	done, failed, unmapped, pending int64
	unenrolFailed                   int64
	delivered                       int64
}

func newInboxFixture(t *testing.T) inboxFixture {
	t.Helper()
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(filepath.Dir(cfgPath), "outbox.db"))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	f := inboxFixture{cfg: cfgPath}

	save := func(src, key string, a inboundstore.Action, st inboundstore.State, person string) int64 {
		m := inboundstore.Message{Source: src, DedupeKey: key, Verified: inboundstore.VerifiedSignature, Action: a, State: st,
			PersonID: person, ElearningCode: "MOO-1", Event: "deelnemer.ingeschreven"}
		if a == inboundstore.ActionEnrol {
			m.FirstName, m.Infix, m.LastName, m.Email = "Jan", "van", "Jansen", "jan@example.org"
			m.Body = []byte(`{"PersoonVoornaam":"Jan","PersoonAchternaam":"Jansen"}`)
		}
		stored, _, err := s.SaveMessage(ctx, m, inboundstore.KeepExisting)
		require.NoError(t, err)
		return stored.ID
	}
	finish := func(id int64, st inboundstore.State, reason string) {
		_, ok, err := s.ClaimMessage(ctx, id, "setup", time.Now(), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.FinishMessage(ctx, inboundstore.Finish{ID: id, Owner: "setup", State: st, Error: reason}))
	}
	f.done = save(inboundstore.SourceLink, "k1", inboundstore.ActionEnrol, inboundstore.StatePending, "P-1")
	finish(f.done, inboundstore.StateDone, "")
	f.failed = save("webhook:cv", "k2", inboundstore.ActionEnrol, inboundstore.StatePending, "P-1")
	finish(f.failed, inboundstore.StateFailed, `LMS connection "moodle" refused: course MOO-1 does not exist`)
	f.unenrolFailed = save("webhook:cv", "k3", inboundstore.ActionUnenrol, inboundstore.StatePending, "P-1")
	finish(f.unenrolFailed, inboundstore.StateFailed, "refused")
	f.unmapped = save("webhook:cv", "k4", inboundstore.ActionUnmapped, inboundstore.StateUnmapped, "")
	f.pending = save("webhook:other", "k5", inboundstore.ActionEnrol, inboundstore.StatePending, "P-2")

	for _, tk := range []inboundstore.Token{
		{GrantID: "grant-a", ClientID: "coachview", CodeHash: inboundstore.Hash("code-secret"), CodeExpiresAt: time.Now().Add(-time.Minute)},
		{GrantID: "grant-a", ClientID: "coachview", AccessHash: inboundstore.Hash("access-secret"), AccessExpiresAt: time.Now().Add(time.Hour),
			RefreshHash: inboundstore.Hash("refresh-secret"), RefreshExpiresAt: time.Now().Add(24 * time.Hour)},
		{GrantID: "grant-b", ClientID: "test-client", AccessHash: inboundstore.Hash("other-access"), AccessExpiresAt: time.Now().Add(time.Hour)},
	} {
		_, err := s.CreateToken(ctx, tk)
		require.NoError(t, err)
	}

	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "coachview", Connection: "export", ElearningCode: "MOO-1", PersonID: "p-1",
			Body: []byte(`<CoachviewResultaat Opmerking="Goed gedaan, Jan"/>`)}, outbox.EnqueuePolicy{})
		return err
	}))
	items, err := s.Claim(ctx, "coachview", "setup", 1, time.Now(), time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 1)
	f.delivered = items[0].ID
	require.NoError(t, s.Finish(ctx, outbox.Finish{ID: f.delivered, Owner: "setup", State: outbox.StateDelivered, Tries: 1,
		Attempt: outbox.Attempt{At: time.Now(), Status: 200, Class: "delivered", Response: "OK Jan Jansen"}}))
	return f
}

// run calls a command with the fixture's configuration.
func (f inboxFixture) run(t *testing.T, cmd func(context.Context, []string, io.Writer) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	full := append([]string{args[0], "--config", f.cfg}, args[1:]...)
	if args[0] == "" { // forget has no sub-command
		full = append([]string{"--config", f.cfg}, args[1:]...)
	}
	err := cmd(context.Background(), full, &out)
	return out.String(), err
}

// lines are out's non-empty lines.
func lines(out string) []string {
	return strings.Split(strings.TrimSpace(out), "\n")
}

func TestInboxCommands(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)

	list := []struct {
		name string
		args []string
		ids  []int64
	}{
		{"all, newest first", []string{"list"}, []int64{f.pending, f.unmapped, f.unenrolFailed, f.failed, f.done}},
		{"by state", []string{"list", "--state", "failed"}, []int64{f.unenrolFailed, f.failed}},
		{"by link source", []string{"list", "--source", "link"}, []int64{f.done}},
		{"by webhook source", []string{"list", "--source", "webhook:other"}, []int64{f.pending}},
		{"with a limit", []string{"list", "--limit", "2"}, []int64{f.pending, f.unmapped}},
	}
	for _, tc := range list {
		out, err := f.run(t, cmdInbox, tc.args...)
		require.NoError(t, err, tc.name)
		rows := lines(out)
		require.Len(t, rows, len(tc.ids)+1, "%s:\n%s", tc.name, out)
		assert.True(t, strings.HasPrefix(rows[0], "ID"), tc.name)
		for i, id := range tc.ids {
			assert.Equal(t, id, mustID(t, strings.Fields(rows[i+1])[0]), "%s row %d", tc.name, i)
		}
		assert.NotContains(t, out, "Jansen", "%s: no names in the list", tc.name)
		assert.NotContains(t, out, "jan@example.org", tc.name)
	}
	out, _ := f.run(t, cmdInbox, "list")
	assert.Contains(t, out, `event "deelnemer.ingeschreven" is not mapped`)
	assert.Contains(t, out, "course MOO-1 does not exist")

	out, err := f.run(t, cmdInbox, "show", itoa(f.failed))
	require.NoError(t, err)
	for _, want := range []string{"webhook:cv", "enrol", "P-1", "MOO-1", "Jansen", "jan@example.org", "failed", "course MOO-1 does not exist"} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "body:", "the body only with --body")
	out, err = f.run(t, cmdInbox, "show", "--body", itoa(f.failed))
	require.NoError(t, err)
	assert.Contains(t, out, `"PersoonAchternaam":"Jansen"`)

	out, err = f.run(t, cmdInbox, "retry", itoa(f.failed))
	require.NoError(t, err)
	assert.Contains(t, out, "pending again")
	out, _ = f.run(t, cmdInbox, "show", itoa(f.failed))
	assert.Regexp(t, `state:\s+pending`, out)
	assert.Regexp(t, `attempts:\s+0`, out)

	errs := []struct {
		name  string
		args  []string
		usage bool
		is    error
	}{
		{"retry a done message", []string{"retry", itoa(f.done)}, false, inboundstore.ErrState},
		{"show an unknown id", []string{"show", "99999"}, false, inboundstore.ErrNotFound},
		{"retry an unknown id", []string{"retry", "99999"}, false, inboundstore.ErrNotFound},
		{"not an id", []string{"show", "abc"}, true, nil},
		{"no id", []string{"retry"}, true, nil},
		{"unknown state", []string{"list", "--state", "lost"}, true, nil},
		{"unknown source", []string{"list", "--source", "mail"}, true, nil},
		{"unknown sub-command", []string{"purge"}, true, nil},
	}
	for _, tc := range errs {
		_, err := f.run(t, cmdInbox, tc.args...)
		require.Error(t, err, tc.name)
		if tc.usage {
			assert.Equal(t, 2, exitCode(err), tc.name)
		} else {
			assert.ErrorIs(t, err, tc.is, tc.name)
			assert.Equal(t, 1, exitCode(err), tc.name)
		}
	}
	err = cmdInbox(context.Background(), nil, io.Discard)
	assert.Equal(t, 2, exitCode(err))
}

func TestOAuthCommands(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	out, err := f.run(t, cmdOAuth, "list")
	require.NoError(t, err)
	rows := lines(out)
	require.Len(t, rows, 4, out)
	assert.Contains(t, rows[1], "test-client")
	assert.Contains(t, rows[2], "access+refresh")
	assert.Contains(t, rows[2], "active")
	assert.Contains(t, rows[3], "code")
	assert.Contains(t, rows[3], "expired")
	for _, secret := range []string{"code-secret", "access-secret", "refresh-secret",
		inboundstore.Hash("code-secret"), inboundstore.Hash("access-secret"), inboundstore.Hash("refresh-secret")} {
		assert.NotContains(t, out, secret, "never a token or its hash")
	}

	out, err = f.run(t, cmdOAuth, "list", "--client", "coachview", "--active")
	require.NoError(t, err)
	assert.Len(t, lines(out), 2, out)

	out, err = f.run(t, cmdOAuth, "revoke", "--grant", "grant-a")
	require.NoError(t, err)
	assert.Contains(t, out, "revoked 2 ")
	out, err = f.run(t, cmdOAuth, "revoke", "--client", "test-client")
	require.NoError(t, err)
	assert.Contains(t, out, "revoked 1 ")
	out, err = f.run(t, cmdOAuth, "list", "--active")
	require.NoError(t, err)
	assert.Len(t, lines(out), 1, "nothing active is left:\n%s", out)
	out, err = f.run(t, cmdOAuth, "list", "--client", "coachview")
	require.NoError(t, err)
	assert.Contains(t, out, "revoked")
	assert.Contains(t, out, inboundstore.ReasonOperator)

	for name, args := range map[string][]string{
		"neither client nor grant": {"revoke"},
		"both client and grant":    {"revoke", "--client", "a", "--grant", "b"},
		"unknown sub-command":      {"rotate"},
	} {
		_, err := f.run(t, cmdOAuth, args...)
		assert.Equal(t, 2, exitCode(err), name)
	}
}

func TestForgetCommand(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	out, err := f.run(t, cmdForget, "", "p-1")
	require.NoError(t, err)
	assert.Contains(t, out, "inbound messages erased (names, e-mail address, body): 3")
	assert.Contains(t, out, "delivered results erased (XML body, Coachview's responses): 1")
	assert.NotContains(t, out, "undelivered")

	out, err = f.run(t, cmdInbox, "show", "--body", itoa(f.failed))
	require.NoError(t, err)
	assert.Contains(t, out, "personal data:")
	assert.NotContains(t, out, "Jansen")
	assert.NotContains(t, out, "body:")
	_, err = f.run(t, cmdInbox, "retry", itoa(f.failed))
	assert.ErrorIs(t, err, inboundstore.ErrErased, "an erased enrolment cannot be sent to the LMS again")
	out, err = f.run(t, cmdInbox, "retry", itoa(f.unenrolFailed))
	require.NoError(t, err, "an unenrolment needs no personal data")
	assert.Contains(t, out, "pending again")

	out, err = runCLI(t, "outbox", "show", "--config", f.cfg, itoa(f.delivered))
	require.NoError(t, err)
	assert.Contains(t, out, "delivered")
	assert.Contains(t, out, "p-1", "the id Coachview needs is kept")
	assert.NotContains(t, out, "Goed gedaan")
	assert.NotContains(t, out, "OK Jan Jansen")

	out, err = f.run(t, cmdInbox, "show", itoa(f.pending))
	require.NoError(t, err)
	assert.Contains(t, out, "Jansen", "another person's data is kept")

	for name, args := range map[string][]string{"no id": {""}, "two ids": {"", "a", "b"}, "blank id": {"", " "}} {
		_, err := f.run(t, cmdForget, args...)
		assert.Equal(t, 2, exitCode(err), name)
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return id
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }
