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
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// InboundOpener returns a new, empty inbound store whose notion of now is
// clk, closed (via t.Cleanup) when t ends. It is called once per subtest,
// from parallel subtests.
type InboundOpener func(t *testing.T, clk clock.Clock) inboundstore.Store

// RunInbound runs the conformance suite of the inboundstore.Store contract
// (inbound messages and hashed OAuth tokens) and of the inbound extensions
// every backend implements (inboundstore.MessageAdmin, PersonalData,
// EnrolmentList, MessagePurger) against the stores open returns.
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
		{"TokenPurgeKeepsReuseDetection", testTokenPurgeKeepsReuseDetection},
		{"RetryFailedMessage", testRetryMessage},
		{"EraseFinishedPersonalData", testErasePersonalData},
		{"ForgetPerson", testForgetPerson},
		{"EnrolmentListRecordsDoneEnrolments", testEnrolmentList},
		{"EnrolmentListFiltersAndCounts", testEnrolmentFilters},
		{"EnrolmentListAtomicWithFinish", testEnrolmentAtomicity},
		{"PurgeFinishedMessages", testPurgeMessages},
		{"OrderSupersedesWaitingRequest", testOrderSupersedesWaiting},
		{"OrderWaitsForRequestInFlight", testOrderWaitsForInFlight},
		{"OrderRepeatAnsweredOrRearmed", testOrderRepeatAnsweredOrRearmed},
		{"OrderAndForgetByPersonKey", testOrderPersonKey},
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

// testTokenPurgeKeepsReuseDetection: a rotated refresh token's record
// outlives the purge while its grant lives and the token itself has not
// expired, so presenting it again is still recognised as reuse (and
// revokes the grant) however long the client waits between refreshes. Once
// the whole grant is revoked, its records go.
func testTokenPurgeKeepsReuseDetection(t *testing.T, f *inboundFixture) {
	first := f.create(tok("g1", "cv", "1"))
	next := tok("g1", "cv", "2")
	next.AccessExpiresAt, next.RefreshExpiresAt = Epoch.Add(90*time.Minute), Epoch.Add(30*time.Minute+90*24*time.Hour)
	_, ok, err := f.s.RotateRefresh(f.ctx, first.RefreshHash, next, Epoch.Add(30*time.Minute))
	require.NoError(t, err)
	require.True(t, ok)

	n, err := f.s.PurgeTokens(f.ctx, Epoch.Add(48*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "the rotated record stays while its grant lives and its refresh token has not expired")
	old, err := f.s.TokenByHash(f.ctx, inboundstore.KindRefresh, first.RefreshHash)
	require.NoError(t, err, "the rotated refresh token is still known")
	assert.Equal(t, inboundstore.ReasonRotated, old.RevokeReason)

	revoked, err := f.s.RevokeGrant(f.ctx, "g1", Epoch.Add(49*time.Hour), inboundstore.ReasonReuse)
	require.NoError(t, err)
	assert.Equal(t, 1, revoked)
	n, err = f.s.PurgeTokens(f.ctx, Epoch.Add(50*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "a grant revoked as a whole goes")
}

// privacy returns the fixture's store as the personal-data and admin
// interfaces, failing when the backend lacks them.
func (f *inboundFixture) privacy() interface {
	inboundstore.PersonalData
	inboundstore.MessageAdmin
} {
	f.t.Helper()
	p, ok := f.s.(interface {
		inboundstore.PersonalData
		inboundstore.MessageAdmin
	})
	require.True(f.t, ok, "%T implements neither inboundstore.PersonalData nor inboundstore.MessageAdmin", f.s)
	return p
}

// finished saves m and takes it to state st (done or failed) through a claim.
func (f *inboundFixture) finished(m inboundstore.Message, st inboundstore.State) inboundstore.Message {
	f.t.Helper()
	saved, _ := f.save(m, inboundstore.KeepExisting)
	_, ok, err := f.s.ClaimMessage(f.ctx, saved.ID, "setup", f.clk.Now(), time.Minute)
	require.NoError(f.t, err)
	require.True(f.t, ok)
	f.finish(saved.ID, "setup", st, time.Time{}, "reason "+string(st))
	return f.get(saved.ID)
}

// assertErased checks that m's personal data is gone and the rest kept.
func assertErased(t *testing.T, m inboundstore.Message, personID string) {
	t.Helper()
	assert.True(t, m.Erased(), "message %d erased", m.ID)
	assert.Empty(t, m.FirstName+m.Infix+m.LastName+m.Email, "message %d names and e-mail", m.ID)
	assert.Empty(t, m.Body, "message %d body", m.ID)
	assert.Equal(t, personID, m.PersonID, "message %d keeps the person id", m.ID)
	assert.Equal(t, "E1", m.ElearningCode, "message %d keeps the e-learning code", m.ID)
}

// assertKept checks that m's personal data is still there.
func assertKept(t *testing.T, m inboundstore.Message) {
	t.Helper()
	assert.False(t, m.Erased(), "message %d not erased", m.ID)
	assert.Equal(t, "Jansen", m.LastName, "message %d", m.ID)
	assert.Equal(t, "jan@example.org", m.Email, "message %d", m.ID)
	assert.NotEmpty(t, m.Body, "message %d", m.ID)
}

func testRetryMessage(t *testing.T, f *inboundFixture) {
	p := f.privacy()
	failed := f.finished(msg("link", "f"), inboundstore.StateFailed)
	f.clk.Advance(time.Hour)
	got, err := p.RetryMessage(f.ctx, failed.ID, f.clk.Now())
	require.NoError(t, err)
	assert.Equal(t, inboundstore.StatePending, got.State)
	assert.Zero(t, got.Attempts)
	sameTime(t, f.clk.Now(), got.NextAttemptAt, "due now")
	assert.Equal(t, []int64{failed.ID}, messageIDs(f.claim("w", 10, time.Minute)), "a retried message is claimed")

	_, err = p.RetryMessage(f.ctx, failed.ID, f.clk.Now())
	assert.ErrorIs(t, err, inboundstore.ErrState, "a pending message is not retried")
	done := f.finished(msg("link", "d"), inboundstore.StateDone)
	_, err = p.RetryMessage(f.ctx, done.ID, f.clk.Now())
	assert.ErrorIs(t, err, inboundstore.ErrState, "a done message is not retried")
	_, err = p.RetryMessage(f.ctx, 9999, f.clk.Now())
	assert.ErrorIs(t, err, inboundstore.ErrNotFound)

	enrol := f.finished(msg("link", "e"), inboundstore.StateFailed)
	unenrol := msg("link", "u")
	unenrol.Action, unenrol.FirstName, unenrol.LastName, unenrol.Email, unenrol.Body = inboundstore.ActionUnenrol, "", "", "", nil
	un := f.finished(unenrol, inboundstore.StateFailed)
	f.clk.Advance(time.Hour)
	_, err = p.ErasePersonalData(f.ctx, f.clk.Now())
	require.NoError(t, err)
	_, err = p.RetryMessage(f.ctx, enrol.ID, f.clk.Now())
	assert.ErrorIs(t, err, inboundstore.ErrErased, "an erased enrolment has no name to send")
	assert.Equal(t, inboundstore.StateFailed, f.get(enrol.ID).State)
	got, err = p.RetryMessage(f.ctx, un.ID, f.clk.Now())
	require.NoError(t, err, "an unenrolment needs only ids")
	assert.Equal(t, inboundstore.StatePending, got.State)
}

func testErasePersonalData(t *testing.T, f *inboundFixture) {
	p := f.privacy()
	pending, _ := f.save(msg("webhook:cv", "pending"), inboundstore.KeepExisting)
	done := f.finished(msg("webhook:cv", "done"), inboundstore.StateDone)
	failed := f.finished(msg("webhook:cv", "failed"), inboundstore.StateFailed)
	linkDone := f.finished(msg("link", "link"), inboundstore.StateDone)
	unmappedMsg := msg("webhook:cv", "unmapped")
	unmappedMsg.Action, unmappedMsg.State = inboundstore.ActionUnmapped, inboundstore.StateUnmapped
	unmapped, _ := f.save(unmappedMsg, inboundstore.KeepExisting)
	cutoff := f.clk.Now().Add(time.Minute)
	f.clk.Advance(2 * time.Minute)
	recent := f.finished(msg("webhook:cv", "recent"), inboundstore.StateDone)

	n, err := p.ErasePersonalData(f.ctx, cutoff)
	require.NoError(t, err)
	assert.Equal(t, 4, n, "done, failed, link done and unmapped before the cutoff")
	for _, m := range []inboundstore.Message{done, failed, linkDone, unmapped} {
		got := f.get(m.ID)
		assertErased(t, got, m.PersonID)
		sameTime(t, f.clk.Now(), got.ErasedAt, "erased at")
		assert.Equal(t, m.State, got.State, "the state is kept")
		assert.Equal(t, m.LastError, got.LastError, "the reason is kept")
		assert.Equal(t, m.Event, got.Event, "the event is kept")
	}
	assertKept(t, f.get(pending.ID))
	assertKept(t, f.get(recent.ID))

	// An LMS refusal that quotes the e-mail address loses it with the rest.
	quoting, _ := f.save(msg("webhook:cv", "quoting"), inboundstore.KeepExisting)
	_, ok, err := f.s.ClaimMessage(f.ctx, quoting.ID, "setup", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	f.finish(quoting.ID, "setup", inboundstore.StateFailed, time.Time{}, "refused (Email address already exists: jan@example.org)")
	f.clk.Advance(2 * time.Minute)
	n, err = p.ErasePersonalData(f.ctx, f.clk.Now().Add(-time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the recent message and the quoting one")
	assert.Equal(t, "refused (Email address already exists: [e-mail erased])", f.get(quoting.ID).LastError)
	assert.Equal(t, recent.LastError, f.get(recent.ID).LastError, "a reason without the address is kept as it is")

	f.clk.Advance(time.Hour)
	n, err = p.ErasePersonalData(f.ctx, cutoff)
	require.NoError(t, err)
	assert.Zero(t, n, "erased messages are not counted again")
	sameTime(t, cutoff.Add(time.Minute), f.get(done.ID).ErasedAt, "the first erasure time is kept")

	resend, out := f.save(msg("webhook:cv", "done"), inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.Existed, out, "a webhook resend is still recognised")
	assert.Equal(t, done.ID, resend.ID)
	assert.Empty(t, resend.LastName, "and brings no personal data back")
	again, out := f.save(msg("link", "link"), inboundstore.Rearm)
	assert.Equal(t, inboundstore.Inserted, out, "a repeated enrolment-link request is a new message")
	assert.NotEqual(t, linkDone.ID, again.ID)
	assertKept(t, again)
}

func testForgetPerson(t *testing.T, f *inboundFixture) {
	p := f.privacy()
	ob, ok := f.s.(outbox.Store)
	require.True(t, ok, "%T is no outbox.Store", f.s)
	of := &fixture{t: t, ctx: f.ctx, clk: f.clk, s: ob}

	// Inbound messages: two of the person (ids compared case-insensitively), one of another.
	mine := msg("link", "mine")
	mine.PersonID, mine.Email = "P-42", "Jan@Example.org"
	doneMine, _ := f.save(mine, inboundstore.KeepExisting)
	_, ok, err := f.s.ClaimMessage(f.ctx, doneMine.ID, "setup", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	f.finish(doneMine.ID, "setup", inboundstore.StateFailed, time.Time{}, "refused: Email address already exists: jan@example.org")
	hook := msg("webhook:cv", "hook")
	hook.PersonID = "p-42"
	pendingMine, _ := f.save(hook, inboundstore.KeepExisting)
	other, _ := f.save(msg("link", "other"), inboundstore.KeepExisting)

	// Outbox results of the person in every state, and one of another person.
	delivered := of.drive(result("cv", "E1", "P-42", "passed"), outbox.StateDelivered)
	_, attempts, err := ob.Get(f.ctx, delivered.ID)
	require.NoError(t, err)
	require.NotEmpty(t, attempts)
	withResponse := of.drive(result("cv", "E2", "p-42", "resp"), outbox.StateSending)
	require.NoError(t, ob.Finish(f.ctx, outbox.Finish{ID: withResponse.ID, Owner: "setup", State: outbox.StateDelivered, Tries: 1,
		Attempt: outbox.Attempt{At: f.clk.Now(), Status: 200, Class: "delivered", Response: "Resultaat van Jan Jansen verwerkt"}}))
	rejected := of.drive(result("cv", "E3", "P-42", "bad"), outbox.StateRejected)
	cancelled := of.drive(result("cv", "E4", "P-42", "c"), outbox.StateCancelled)
	failed := of.drive(result("cv", "E5", "P-42", "f"), outbox.StateFailed)
	ignored := of.drive(result("cv", "E6", "P-42", "i"), outbox.StateIgnored)
	pendingRows, err := ob.List(f.ctx, outbox.Filter{ElearningCode: "E6", State: outbox.StatePending})
	require.NoError(t, err)
	require.Len(t, pendingRows, 1, "the ignored completion's pair keeps its pending row")
	pendingRow := pendingRows[0]
	sending := of.drive(result("cv-b", "E7", "P-42", "s"), outbox.StateSending)
	otherRow := of.drive(result("cv-c", "E1", "someone-else", "passed"), outbox.StateDelivered)

	f.clk.Advance(time.Minute)
	rep, err := p.ForgetPerson(f.ctx, "p-42")
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Messages)
	assert.Equal(t, 1, rep.Cancelled)
	assert.Equal(t, 2, rep.Delivered)
	assert.Equal(t, 3, rep.History, "rejected, cancelled and ignored rows")
	assert.Equal(t, []int64{failed.ID, pendingRow.ID, sending.ID}, rep.Undelivered)

	assertErased(t, f.get(doneMine.ID), "P-42")
	assert.Equal(t, "refused: Email address already exists: [e-mail erased]", f.get(doneMine.ID).LastError,
		"an LMS refusal quoting the e-mail address (in lower case) loses it")
	gotPending := f.get(pendingMine.ID)
	assertErased(t, gotPending, "p-42")
	assert.Equal(t, inboundstore.StateFailed, gotPending.State, "a pending message is not carried out without its data")
	assert.Contains(t, gotPending.LastError, "erased")
	assert.Equal(t, []int64{other.ID}, messageIDs(f.claim("w", 10, time.Minute)), "only the other person's message is due")
	assertKept(t, f.get(other.ID))

	for _, id := range []int64{delivered.ID, withResponse.ID} {
		it, atts, err := ob.Get(f.ctx, id)
		require.NoError(t, err)
		assert.Empty(t, it.Body, "delivered result %d body", id)
		assert.Equal(t, outbox.StateDelivered, it.State)
		assert.Equal(t, "P-42", strings.ToUpper(it.PersonID), "the id Coachview needs is kept")
		require.NotEmpty(t, atts)
		for _, a := range atts {
			assert.Empty(t, a.Response, "attempt of %d", id)
			assert.Equal(t, 200, a.Status, "the status is kept")
		}
	}
	for _, id := range []int64{rejected.ID, cancelled.ID, ignored.ID} {
		_, _, err := ob.Get(f.ctx, id)
		assert.ErrorIs(t, err, outbox.ErrNotFound, "history row %d deleted", id)
	}
	for _, id := range []int64{failed.ID, pendingRow.ID, sending.ID, otherRow.ID} {
		assert.NotEmpty(t, of.get(id).Body, "result %d keeps its body", id)
	}
	assert.Equal(t, outbox.Unchanged, of.enqueue(result("cv", "E1", "P-42", "passed"), outbox.EnqueuePolicy{}),
		"the same completion read again is still known as delivered")

	rep, err = p.ForgetPerson(f.ctx, "P-42")
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Messages, "forgetting again finds the same, erased messages")
	assert.Zero(t, rep.Cancelled+rep.History)
	_, err = p.ForgetPerson(f.ctx, " ")
	assert.Error(t, err)
}
