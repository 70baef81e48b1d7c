package outboxtest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// InboundOpener returns a new, empty inbound store whose notion of now is
// clk, closed (via t.Cleanup) when t ends. It is called once per subtest,
// from parallel subtests.
type InboundOpener func(t *testing.T, clk clock.Clock) inboundstore.Store

// RunInbound runs the conformance suite of the inboundstore.Store contract
// (inbound messages and hashed OAuth tokens) against the stores open returns.
func RunInbound(t *testing.T, open InboundOpener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *inboundFixture)
	}{
		{"SaveStoresOnceByDedupeKey", testSaveDedupe},
		{"SaveRearmsFinishedMessages", testSaveRearm},
		{"SaveRejectsInvalidMessages", testSaveInvalid},
		{"SaveClipsBodyAndError", testSaveClips},
		{"ConcurrentSavesStoreOnce", testConcurrentSaves},
		{"ClaimDueInOrderWithLimit", testClaimMessages},
		{"ClaimLeaseExpiry", testClaimMessageLease},
		{"ClaimOneMessage", testClaimOneMessage},
		{"FinishStatesAndLeaseLoss", testFinishMessage},
		{"ConcurrentClaimersDisjoint", testConcurrentMessageClaimers},
		{"ListMessagesFiltersAndPages", testListMessages},
		{"TokenLookupByEachHash", testTokenLookup},
		{"TokenCodeConsumedOnce", testTokenCodeConsumedOnce},
		{"TokenRotateRefresh", testTokenRotate},
		{"TokenRevokeGrantAndClient", testTokenRevokeGrantClient},
		{"TokenListActiveAndPurge", testTokenListPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(Epoch)
			tc.fn(t, &inboundFixture{t: t, ctx: t.Context(), clk: clk, s: open(t, clk)})
		})
	}
}

// inboundFixture is one inbound store with its fake clock.
type inboundFixture struct {
	t   *testing.T
	ctx context.Context
	clk *clock.Fake
	s   inboundstore.Store
}

// msg is a pending enrolment message from source with dedupe key key.
func msg(source, key string) inboundstore.Message {
	return inboundstore.Message{
		Source: source, DedupeKey: key, Verified: inboundstore.VerifiedSignature, Event: "deelnemer.ingeschreven",
		Body: []byte(`{"key":"` + key + `"}`), Action: inboundstore.ActionEnrol, PersonID: "p-" + key,
		ElearningCode: "E1", FirstName: "Jan", Infix: "van", LastName: "Jansen", Email: "jan@example.org",
		State: inboundstore.StatePending,
	}
}

func (f *inboundFixture) save(m inboundstore.Message, dup inboundstore.Duplicate) (inboundstore.Message, inboundstore.SaveOutcome) {
	f.t.Helper()
	got, out, err := f.s.SaveMessage(f.ctx, m, dup)
	require.NoError(f.t, err)
	return got, out
}

func (f *inboundFixture) claim(owner string, limit int, lease time.Duration) []inboundstore.Message {
	f.t.Helper()
	ms, err := f.s.ClaimMessages(f.ctx, owner, limit, f.clk.Now(), lease)
	require.NoError(f.t, err)
	return ms
}

func (f *inboundFixture) finish(id int64, owner string, st inboundstore.State, next time.Time, reason string) {
	f.t.Helper()
	require.NoError(f.t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: id, Owner: owner, State: st, NextAttemptAt: next, Error: reason, At: f.clk.Now()}))
}

func (f *inboundFixture) get(id int64) inboundstore.Message {
	f.t.Helper()
	m, err := f.s.GetMessage(f.ctx, id)
	require.NoError(f.t, err)
	return m
}

func messageIDs(ms []inboundstore.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testSaveDedupe(t *testing.T, f *inboundFixture) {
	in := msg("webhook:cv", "k1")
	first, out := f.save(in, inboundstore.KeepExisting)
	require.Equal(t, inboundstore.Inserted, out)
	assert.Positive(t, first.ID)
	assert.Equal(t, 1, first.Requests)
	assert.Equal(t, inboundstore.StatePending, first.State)
	sameTime(t, Epoch, first.ReceivedAt, "received_at defaults to now")
	sameTime(t, Epoch, first.NextAttemptAt, "a new pending message is due now")
	assert.Equal(t, in.Body, first.Body)
	assert.Equal(t, []string{"Jan", "van", "Jansen", "jan@example.org", "p-k1", "E1", "deelnemer.ingeschreven", inboundstore.VerifiedSignature},
		[]string{first.FirstName, first.Infix, first.LastName, first.Email, first.PersonID, first.ElearningCode, first.Event, first.Verified})

	f.clk.Advance(time.Minute)
	again, out := f.save(in, inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.Existed, out)
	assert.Equal(t, first.ID, again.ID)
	assert.Equal(t, 2, again.Requests, "a retry counts as a request")
	sameTime(t, Epoch, again.ReceivedAt, "a retry keeps the first receipt time")

	other, out := f.save(msg("webhook:other", "k1"), inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.Inserted, out, "the dedupe key is per source")
	assert.NotEqual(t, first.ID, other.ID)

	ignored := msg("webhook:cv", "k2")
	ignored.Action, ignored.State = inboundstore.ActionUnmapped, inboundstore.StateUnmapped
	got, _ := f.save(ignored, inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.StateUnmapped, got.State)
	assert.True(t, got.NextAttemptAt.IsZero(), "a message that is not pending is never due")
}

func testSaveRearm(t *testing.T, f *inboundFixture) {
	m, _ := f.save(msg("link", "r1"), inboundstore.Rearm)
	again, out := f.save(msg("link", "r1"), inboundstore.Rearm)
	assert.Equal(t, inboundstore.Existed, out, "a pending message is left as it is")
	assert.Equal(t, m.ID, again.ID)

	require.Len(t, f.claim("w", 10, time.Minute), 1)
	f.finish(m.ID, "w", inboundstore.StateFailed, time.Time{}, "course E1 does not exist")
	kept, out := f.save(msg("link", "r1"), inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.Existed, out)
	assert.Equal(t, inboundstore.StateFailed, kept.State, "KeepExisting leaves a failed message failed")

	f.clk.Advance(time.Hour)
	rearmed, out := f.save(msg("link", "r1"), inboundstore.Rearm)
	assert.Equal(t, inboundstore.Rearmed, out)
	assert.Equal(t, m.ID, rearmed.ID)
	assert.Equal(t, inboundstore.StatePending, rearmed.State)
	assert.Zero(t, rearmed.Attempts)
	assert.Empty(t, rearmed.LastError)
	assert.Equal(t, 4, rearmed.Requests)
	sameTime(t, f.clk.Now(), rearmed.NextAttemptAt, "a rearmed message is due now")
	assert.Equal(t, []int64{m.ID}, messageIDs(f.claim("w", 10, time.Minute)))
}

func testSaveInvalid(t *testing.T, f *inboundFixture) {
	for name, mutate := range map[string]func(*inboundstore.Message){
		"no source":  func(m *inboundstore.Message) { m.Source = "" },
		"no key":     func(m *inboundstore.Message) { m.DedupeKey = "" },
		"bad action": func(m *inboundstore.Message) { m.Action = "delete" },
		"bad state":  func(m *inboundstore.Message) { m.State = "sending" },
	} {
		m := msg("link", "bad")
		mutate(&m)
		_, _, err := f.s.SaveMessage(f.ctx, m, inboundstore.KeepExisting)
		assert.Error(t, err, name)
	}
	ms, err := f.s.ListMessages(f.ctx, inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Empty(t, ms)
}

func testSaveClips(t *testing.T, f *inboundFixture) {
	m := msg("link", "big")
	m.Body = bytes.Repeat([]byte("x"), inboundstore.MaxBody+10)
	got, _ := f.save(m, inboundstore.KeepExisting)
	assert.Len(t, got.Body, inboundstore.MaxBody)
	require.Len(t, f.claim("w", 1, time.Minute), 1)
	f.finish(got.ID, "w", inboundstore.StateFailed, time.Time{}, strings.Repeat("é", inboundstore.MaxError))
	failed := f.get(got.ID)
	assert.LessOrEqual(t, len(failed.LastError), inboundstore.MaxError)
	assert.Equal(t, strings.Repeat("é", inboundstore.MaxError/2), failed.LastError, "cut on a character boundary")
}

func testConcurrentSaves(t *testing.T, f *inboundFixture) {
	const n = 8
	outcomes := make([]inboundstore.SaveOutcome, n)
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, out, err := f.s.SaveMessage(f.ctx, msg("webhook:cv", "same"), inboundstore.KeepExisting)
			assert.NoError(t, err)
			outcomes[i], ids[i] = out, m.ID
		})
	}
	wg.Wait()
	inserted := 0
	for i := range n {
		if outcomes[i] == inboundstore.Inserted {
			inserted++
		}
		assert.Equal(t, ids[0], ids[i])
	}
	assert.Equal(t, 1, inserted)
	assert.Equal(t, n, f.get(ids[0]).Requests)
}

func testClaimMessages(t *testing.T, f *inboundFixture) {
	a, _ := f.save(msg("link", "a"), inboundstore.KeepExisting)
	later := msg("link", "later")
	later.NextAttemptAt = Epoch.Add(time.Hour)
	l, _ := f.save(later, inboundstore.KeepExisting)
	b, _ := f.save(msg("link", "b"), inboundstore.KeepExisting)
	c, _ := f.save(msg("link", "c"), inboundstore.KeepExisting)
	skip := msg("link", "ignored")
	skip.Action, skip.State = inboundstore.ActionIgnore, inboundstore.StateIgnored
	f.save(skip, inboundstore.KeepExisting)

	got := f.claim("w1", 2, time.Minute)
	assert.Equal(t, []int64{a.ID, b.ID}, messageIDs(got))
	for _, m := range got {
		assert.Equal(t, "w1", m.LeaseOwner)
		sameTime(t, Epoch.Add(time.Minute), m.LeaseUntil, "lease end")
		sameTime(t, Epoch.Add(time.Minute), m.NextAttemptAt, "a leased message is due at its lease end")
	}
	assert.Equal(t, []int64{c.ID}, messageIDs(f.claim("w2", 10, time.Minute)), "leased and not-yet-due messages are skipped")
	f.clk.Set(Epoch.Add(time.Hour))
	assert.ElementsMatch(t, []int64{a.ID, b.ID, c.ID, l.ID}, messageIDs(f.claim("w3", 10, time.Minute)), "expired leases and due retries")

	_, err := f.s.ClaimMessages(f.ctx, "", 1, f.clk.Now(), time.Minute)
	assert.Error(t, err)
	_, err = f.s.ClaimMessages(f.ctx, "w", 0, f.clk.Now(), time.Minute)
	assert.Error(t, err)
}

func testClaimMessageLease(t *testing.T, f *inboundFixture) {
	m, _ := f.save(msg("link", "a"), inboundstore.KeepExisting)
	require.Len(t, f.claim("dead", 1, time.Minute), 1)
	f.clk.Advance(59 * time.Second)
	assert.Empty(t, f.claim("w", 1, time.Minute))
	f.clk.Advance(time.Second)
	got := f.claim("w", 1, time.Minute)
	require.Len(t, got, 1)
	assert.Equal(t, "w", got[0].LeaseOwner)
	err := f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: m.ID, Owner: "dead", State: inboundstore.StateDone})
	assert.ErrorIs(t, err, inboundstore.ErrLeaseLost, "the first owner lost its lease to the second")
}

func testClaimOneMessage(t *testing.T, f *inboundFixture) {
	later := msg("link", "later")
	later.NextAttemptAt = Epoch.Add(time.Hour)
	m, _ := f.save(later, inboundstore.KeepExisting)
	got, ok, err := f.s.ClaimMessage(f.ctx, m.ID, "h1", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "a pending message is claimed by id even when not due")
	assert.Equal(t, "h1", got.LeaseOwner)

	_, ok, err = f.s.ClaimMessage(f.ctx, m.ID, "h2", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "leased by another owner")
	_, ok, err = f.s.ClaimMessage(f.ctx, m.ID, "h1", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "the owner may renew")

	f.clk.Advance(time.Minute)
	_, ok, err = f.s.ClaimMessage(f.ctx, m.ID, "h2", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "an expired lease may be taken over")
	f.finish(m.ID, "h2", inboundstore.StateDone, time.Time{}, "")
	_, ok, err = f.s.ClaimMessage(f.ctx, m.ID, "h2", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "a done message is not claimed")
	_, ok, err = f.s.ClaimMessage(f.ctx, 9999, "h2", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok)
}

func testFinishMessage(t *testing.T, f *inboundFixture) {
	m, _ := f.save(msg("link", "a"), inboundstore.KeepExisting)
	require.Len(t, f.claim("w", 1, time.Minute), 1)
	retry := Epoch.Add(5 * time.Minute)
	f.finish(m.ID, "w", inboundstore.StatePending, retry, "LMS unreachable")
	got := f.get(m.ID)
	assert.Equal(t, inboundstore.StatePending, got.State)
	assert.Equal(t, 1, got.Attempts)
	assert.Equal(t, "LMS unreachable", got.LastError)
	assert.Empty(t, got.LeaseOwner)
	assert.True(t, got.LeaseUntil.IsZero())
	sameTime(t, retry, got.NextAttemptAt, "retry time")
	assert.Empty(t, f.claim("w", 1, time.Minute), "not due before its retry time")

	f.clk.Set(retry)
	require.Len(t, f.claim("w", 1, time.Minute), 1)
	f.finish(m.ID, "w", inboundstore.StateDone, time.Time{}, "")
	got = f.get(m.ID)
	assert.Equal(t, inboundstore.StateDone, got.State)
	assert.Equal(t, 2, got.Attempts)
	assert.Empty(t, got.LastError)
	assert.True(t, got.NextAttemptAt.IsZero())
	assert.ErrorIs(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: m.ID, Owner: "w", State: inboundstore.StateDone}), inboundstore.ErrLeaseLost,
		"a finished message cannot be finished again")

	n, _ := f.save(msg("link", "b"), inboundstore.KeepExisting)
	require.Len(t, f.claim("w", 1, time.Minute), 1)
	assert.Error(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: n.ID, Owner: "w", State: inboundstore.StatePending}), "a retry needs a time")
	assert.Error(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: n.ID, Owner: "w", State: inboundstore.StateIgnored}))
	assert.ErrorIs(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: n.ID, Owner: "x", State: inboundstore.StateDone}), inboundstore.ErrLeaseLost)
	_, err := f.s.GetMessage(f.ctx, 9999)
	assert.ErrorIs(t, err, inboundstore.ErrNotFound)
}

func testConcurrentMessageClaimers(t *testing.T, f *inboundFixture) {
	const n = 30
	for i := range n {
		f.save(msg("link", fmt.Sprint(i)), inboundstore.KeepExisting)
	}
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for {
				ms, err := f.s.ClaimMessages(f.ctx, fmt.Sprint("w", w), 3, f.clk.Now(), time.Minute)
				if !assert.NoError(t, err) || len(ms) == 0 {
					return
				}
				mu.Lock()
				for _, m := range ms {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Len(t, seen, n)
	for id, c := range seen {
		assert.Equal(t, 1, c, "message %d claimed %d times", id, c)
	}
}

func testListMessages(t *testing.T, f *inboundFixture) {
	var ids []int64
	for i := range 5 {
		src := "link"
		if i%2 == 1 {
			src = "webhook:cv"
		}
		m, _ := f.save(msg(src, fmt.Sprint(i)), inboundstore.KeepExisting)
		ids = append(ids, m.ID)
	}
	all, err := f.s.ListMessages(f.ctx, inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Equal(t, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}, messageIDs(all))
	hooks, err := f.s.ListMessages(f.ctx, inboundstore.MessageFilter{Source: "webhook:cv"})
	require.NoError(t, err)
	assert.Equal(t, []int64{ids[3], ids[1]}, messageIDs(hooks))
	page, err := f.s.ListMessages(f.ctx, inboundstore.MessageFilter{BeforeID: ids[3], Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []int64{ids[2], ids[1]}, messageIDs(page))
	require.Len(t, f.claim("w", 1, time.Minute), 1)
	f.finish(ids[0], "w", inboundstore.StateDone, time.Time{}, "")
	done, err := f.s.ListMessages(f.ctx, inboundstore.MessageFilter{State: inboundstore.StateDone})
	require.NoError(t, err)
	assert.Equal(t, []int64{ids[0]}, messageIDs(done))
}

// tok is a token record of grant with access and refresh secrets named by suffix.
func tok(grant, client, suffix string) inboundstore.Token {
	return inboundstore.Token{
		GrantID: grant, ClientID: client, UserID: "admin", RedirectURI: "https://cv.example/cb", Scope: "enrol",
		AccessHash: inboundstore.Hash("access-" + suffix), AccessExpiresAt: Epoch.Add(time.Hour),
		RefreshHash: inboundstore.Hash("refresh-" + suffix), RefreshExpiresAt: Epoch.Add(90 * 24 * time.Hour),
	}
}

// codeTok is an authorization-code record of grant.
func codeTok(grant, client, code string) inboundstore.Token {
	return inboundstore.Token{
		GrantID: grant, ClientID: client, UserID: "admin", RedirectURI: "https://cv.example/cb",
		CodeHash: inboundstore.Hash(code), CodeChallenge: "abc", CodeChallengeMethod: "S256", CodeExpiresAt: Epoch.Add(10 * time.Minute),
	}
}

func (f *inboundFixture) create(tk inboundstore.Token) inboundstore.Token {
	f.t.Helper()
	got, err := f.s.CreateToken(f.ctx, tk)
	require.NoError(f.t, err)
	return got
}

func testTokenLookup(t *testing.T, f *inboundFixture) {
	c := f.create(codeTok("g1", "cv", "code-1"))
	a := f.create(tok("g1", "cv", "1"))
	sameTime(t, Epoch, a.CreatedAt, "created_at defaults to now")
	for _, tc := range []struct {
		kind inboundstore.TokenKind
		hash string
		want int64
	}{
		{inboundstore.KindCode, inboundstore.Hash("code-1"), c.ID},
		{inboundstore.KindAccess, inboundstore.Hash("access-1"), a.ID},
		{inboundstore.KindRefresh, inboundstore.Hash("refresh-1"), a.ID},
	} {
		got, err := f.s.TokenByHash(f.ctx, tc.kind, tc.hash)
		require.NoError(t, err, tc.kind)
		assert.Equal(t, tc.want, got.ID, tc.kind)
	}
	got, err := f.s.TokenByHash(f.ctx, inboundstore.KindCode, inboundstore.Hash("code-1"))
	require.NoError(t, err)
	assert.Equal(t, "S256", got.CodeChallengeMethod)
	assert.Equal(t, "abc", got.CodeChallenge)
	sameTime(t, Epoch.Add(10*time.Minute), got.CodeExpiresAt, "code expiry")
	assert.Empty(t, got.AccessHash)

	_, err = f.s.TokenByHash(f.ctx, inboundstore.KindAccess, inboundstore.Hash("refresh-1"))
	assert.ErrorIs(t, err, inboundstore.ErrNotFound, "a refresh token is no access token")
	_, err = f.s.TokenByHash(f.ctx, inboundstore.KindAccess, "")
	assert.ErrorIs(t, err, inboundstore.ErrNotFound)
	_, err = f.s.TokenByHash(f.ctx, "password", "x")
	assert.Error(t, err)
	_, err = f.s.CreateToken(f.ctx, tok("g2", "cv", "1"))
	assert.Error(t, err, "hashes are unique")
	_, err = f.s.CreateToken(f.ctx, inboundstore.Token{GrantID: "g3", ClientID: "cv"})
	assert.Error(t, err, "a record needs a secret")
}

func testTokenCodeConsumedOnce(t *testing.T, f *inboundFixture) {
	f.create(codeTok("g1", "cv", "code-1"))
	const n = 6
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for range n {
		wg.Go(func() {
			ok, err := f.s.RevokeToken(f.ctx, inboundstore.KindCode, inboundstore.Hash("code-1"), f.clk.Now(), inboundstore.ReasonConsumed)
			assert.NoError(t, err)
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, won, "exactly one exchange consumes the code")
	got, err := f.s.TokenByHash(f.ctx, inboundstore.KindCode, inboundstore.Hash("code-1"))
	require.NoError(t, err)
	assert.True(t, got.Revoked())
	assert.Equal(t, inboundstore.ReasonConsumed, got.RevokeReason)
}

func testTokenRotate(t *testing.T, f *inboundFixture) {
	old := f.create(tok("g1", "cv", "1"))
	f.clk.Advance(time.Minute)
	next, ok, err := f.s.RotateRefresh(f.ctx, old.RefreshHash, tok("g1", "cv", "2"), f.clk.Now())
	require.NoError(t, err)
	require.True(t, ok)
	assert.NotEqual(t, old.ID, next.ID)
	got, err := f.s.TokenByHash(f.ctx, inboundstore.KindRefresh, old.RefreshHash)
	require.NoError(t, err)
	assert.Equal(t, inboundstore.ReasonRotated, got.RevokeReason)
	sameTime(t, f.clk.Now(), got.RevokedAt, "revoked at")

	_, ok, err = f.s.RotateRefresh(f.ctx, old.RefreshHash, tok("g1", "cv", "3"), f.clk.Now())
	require.NoError(t, err)
	assert.False(t, ok, "a rotated refresh token cannot be rotated again")
	_, err = f.s.TokenByHash(f.ctx, inboundstore.KindAccess, inboundstore.Hash("access-3"))
	assert.ErrorIs(t, err, inboundstore.ErrNotFound, "nothing stored for a refused rotation")
}

func testTokenRevokeGrantClient(t *testing.T, f *inboundFixture) {
	f.create(codeTok("g1", "cv", "code-1"))
	f.create(tok("g1", "cv", "1"))
	f.create(tok("g2", "cv", "2"))
	f.create(tok("g3", "other", "3"))
	n, err := f.s.RevokeGrant(f.ctx, "g1", f.clk.Now(), inboundstore.ReasonReuse)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = f.s.RevokeGrant(f.ctx, "g1", f.clk.Now(), inboundstore.ReasonReuse)
	require.NoError(t, err)
	assert.Zero(t, n, "already revoked")
	n, err = f.s.RevokeClient(f.ctx, "cv", f.clk.Now(), inboundstore.ReasonOperator)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	ok, err := f.s.RevokeToken(f.ctx, inboundstore.KindAccess, inboundstore.Hash("access-3"), f.clk.Now(), inboundstore.ReasonOperator)
	require.NoError(t, err)
	assert.True(t, ok)
	active, err := f.s.ListTokens(f.ctx, inboundstore.TokenFilter{Active: true, Now: f.clk.Now()})
	require.NoError(t, err)
	assert.Empty(t, active)
}

func testTokenListPurge(t *testing.T, f *inboundFixture) {
	code := f.create(codeTok("g1", "cv", "code-1"))             // expires Epoch+10m
	short := tok("g2", "cv", "2")                               // refresh expires Epoch+90d
	short.RefreshHash, short.RefreshExpiresAt = "", time.Time{} // access only, expires Epoch+1h
	s := f.create(short)
	long := f.create(tok("g3", "other", "3"))

	list := func(filter inboundstore.TokenFilter) []int64 {
		ts, err := f.s.ListTokens(f.ctx, filter)
		require.NoError(t, err)
		out := make([]int64, len(ts))
		for i, tk := range ts {
			out[i] = tk.ID
		}
		return out
	}
	assert.Equal(t, []int64{long.ID, s.ID, code.ID}, list(inboundstore.TokenFilter{}))
	assert.Equal(t, []int64{s.ID, code.ID}, list(inboundstore.TokenFilter{ClientID: "cv"}))
	assert.Equal(t, []int64{long.ID, s.ID}, list(inboundstore.TokenFilter{Active: true, Now: Epoch.Add(30 * time.Minute)}))
	assert.Equal(t, []int64{long.ID}, list(inboundstore.TokenFilter{Active: true, Now: Epoch.Add(2 * time.Hour)}))

	n, err := f.s.PurgeTokens(f.ctx, Epoch.Add(30*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only the code had expired by then")
	n, err = f.s.PurgeTokens(f.ctx, Epoch.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []int64{long.ID}, list(inboundstore.TokenFilter{}))
}
