package moodle

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// watched returns the watched enrolments of a committed cursor as
// "user/course person code" strings, sorted.
func watched(t *testing.T, sink *memSink) []string {
	t.Helper()
	var cur wsCursor
	require.NoError(t, json.Unmarshal(sink.LastCursor(), &cur))
	var out []string
	for _, e := range cur.Enrolments {
		out = append(out, fmtTracked(e))
	}
	sort.Strings(out)
	return out
}

func fmtTracked(e tracked) string {
	b, _ := json.Marshal([]any{e.User, e.Course, e.Person, e.Code})
	return string(b)
}

// watch runs m.Watch until the test ends and returns a channel that
// receives each wake-up; it returns once the wake function is in place.
func watch(t *testing.T, m *Moodle) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	woken := make(chan struct{}, 10)
	done := make(chan error)
	go func() { done <- m.Watch(ctx, func() { woken <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	for {
		m.wakeMu.Lock()
		ready := m.wake != nil
		m.wakeMu.Unlock()
		if ready {
			return woken
		}
		runtime.Gosched()
	}
}

func TestEnrolAsksForAPoll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	anna := source.Enrolment{PersonID: "P1", FirstName: "Anna", LastName: "Jansen", Email: "anna@example.nl", ElearningCode: "E-VCA"}

	t.Run("webservice mode", func(t *testing.T) {
		t.Parallel()
		site := newSite(t)
		m := wsSource(t, site, "full", "", clock.System{}, nil)
		woken := watch(t, m)
		require.NoError(t, m.Enrol(ctx, anna))
		require.Len(t, woken, 1, "a poll is asked for as soon as Moodle accepted the enrolment")
		require.NoError(t, m.Unenrol(ctx, "P1", "E-VCA"))
		require.Len(t, woken, 2, "an unenrolment too")
		err := m.Enrol(ctx, source.Enrolment{PersonID: "P2", FirstName: "B", LastName: "V", Email: "b@example.nl", ElearningCode: "E-XL"})
		require.Error(t, err)
		require.Len(t, woken, 2, "a refused enrolment asks for nothing")
	})

	t.Run("database mode reads every completion and watches nothing", func(t *testing.T) {
		t.Parallel()
		site := newSite(t)
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.token"), []byte("full\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.dsn"), []byte("postgres://ro@127.0.0.1/moodle\n"), 0o600))
		m, err := newTestMoodle(connection(t, dir, "  mode: database\n  driver: postgres\n  dsn_file: moodle.dsn\n  url: "+site.URL+"\n  token_file: moodle.token\n", nil), clock.System{}, nil)
		require.NoError(t, err)
		woken := watch(t, m)
		require.NoError(t, m.Enrol(ctx, anna))
		assert.Empty(t, woken)
		assert.Empty(t, m.tracks, "no watch list grows in database mode")
	})
}

func TestEnrolmentListClosesTheCrashGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	site := newSite(t)
	site.AddCourse(moodletest.Course{ID: 5, ShortName: "intro", FullName: "Introductie", IDNumber: "E-INTRO"})
	clk := clock.NewFake(time.Unix(t0, 0))
	sink := newMemSink()
	enrol := func(m *Moodle, person, code string) {
		t.Helper()
		require.NoError(t, m.Enrol(ctx, source.Enrolment{PersonID: person, FirstName: "L", LastName: "N", Email: person + "@example.nl", ElearningCode: code}))
		sink.Record(person, code, true) // the core records it done, with its list entry
	}

	first := wsSource(t, site, "full", "", clk, nil)
	enrol(first, "P1", "E-VCA")
	site.ResetCalls()
	require.NoError(t, first.Poll(ctx, sink))
	assert.Equal(t, []string{`[100,2,"P1","E-VCA"]`}, watched(t, sink))
	assert.Equal(t, 1, site.Calls(""), "the enroller's own enrolment is followed without a look-up")

	// Enrolled through Moodle and recorded, then the process dies before
	// its poll: the enrolments are in the old process's memory and in the
	// bridge's enrolment list. E-INTRO is a course no poll has seen.
	enrol(first, "P2", "E-VCA")
	enrol(first, "P3", "E-INTRO")
	// A teacher enrolled someone else: not the bridge's, not watched.
	carla := site.AddUser(moodletest.User{Username: "carla", IDNumber: "P4", FirstName: "C", LastName: "S", Email: "c@x.nl"})
	site.Enrol(carla, 2)

	logs := &bytes.Buffer{}
	restarted := wsSource(t, site, "full", "", clk, logs)
	site.ResetCalls()
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Equal(t, []string{
		`[100,2,"P1","E-VCA"]`,
		`[101,2,"P2","E-VCA"]`,
		`[102,5,"P3","E-INTRO"]`, // found from the list, though no poll had seen its course
	}, watched(t, sink))
	assert.Equal(t, 1, site.Calls(fnUsersByField), "both persons looked up in one call")
	assert.Equal(t, 2, site.Calls(fnCoursesByField), "one call per e-learning code")
	assert.Zero(t, site.Calls(fnEnrolledUsers), "no member lists are read")
	assert.Contains(t, logs.String(), "added=2")

	// The recovered enrolment is checked and sent like any other.
	site.SetProgress(102, 5, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0 + 60}})
	clk.Advance(time.Hour)
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Equal(t, []string{"P3 E-INTRO passed=true dec= text= date=2024-06-01T00:01:00Z remark="}, results(sink))
	site.ResetCalls()
	clk.Advance(2 * time.Hour)
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Equal(t, 2, site.Calls(""), "followed entries are not looked up again: only P1 and P2 are checked")

	// Unenrolled through the bridge elsewhere (another daemon): no longer watched.
	sink.Record("p2", "E-VCA", false)
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Equal(t, []string{`[100,2,"P1","E-VCA"]`}, watched(t, sink))

	// Enrolled anew: watched again, and a person whose completion was sent
	// is checked again when the bridge enrols them anew.
	sink.Record("P2", "E-VCA", true)
	sink.Record("P3", "E-INTRO", true)
	site.ResetCalls()
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Equal(t, []string{`[100,2,"P1","E-VCA"]`, `[101,2,"P2","E-VCA"]`}, watched(t, sink))
	assert.Equal(t, 2, site.Calls(fnCompletion), "P2 and P3 are checked at once (P3 is complete: done again, nothing new to send)")

	// An entry Moodle does not know is logged once and not looked up again.
	sink.Record("P9", "E-VCA", true)
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Contains(t, logs.String(), "not in Moodle")
	site.ResetCalls()
	require.NoError(t, restarted.Poll(ctx, sink))
	assert.Zero(t, site.Calls(fnUsersByField))
}

func TestEnrolmentListLookupFailureIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	site := newSite(t)
	clk := clock.NewFake(time.Unix(t0, 0))
	u := site.AddUser(moodletest.User{Username: "anna", IDNumber: "P1", FirstName: "A", LastName: "J", Email: "a@x.nl"})
	site.Enrol(u, 2)
	sink := newMemSink()
	sink.Record("P1", "E-VCA", true)

	logs := &bytes.Buffer{}
	m := wsSource(t, site, "pollsonly", "", clk, logs) // may not look users up
	require.NoError(t, m.Poll(ctx, sink))
	assert.Empty(t, sink.LastCursor(), "nothing to watch, nothing committed")
	assert.Contains(t, logs.String(), "trying again at the next poll")

	fixed := wsSource(t, site, "full", "", clk, nil)
	require.NoError(t, fixed.Poll(ctx, sink))
	assert.Equal(t, []string{`[100,2,"P1","E-VCA"]`}, watched(t, sink), "looked up once Moodle answers")
}

func TestWebServiceDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	site := newSite(t)
	clk := clock.NewFake(time.Unix(t0, 0))
	m := wsSource(t, site, "full", "  result: decimal\n", clk, nil)
	require.NoError(t, m.Enrol(ctx, source.Enrolment{PersonID: "P1", FirstName: "A", LastName: "J", Email: "a@example.nl", ElearningCode: "E-VCA"}))
	site.SetProgress(100, 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0}, Grade: "80", GradeMax: "100"})

	dry := newMemSink()
	dry.Dry = true
	dry.SetCursor([]byte(`{"enrolments":[]}`))
	site.ResetCalls()
	for range 2 {
		require.NoError(t, m.Poll(ctx, dry))
	}
	assert.Equal(t, `{"enrolments":[]}`, string(dry.LastCursor()), "the cursor is unchanged")
	assert.Empty(t, results(dry))
	assert.Equal(t, 0, dry.Commits())
	assert.Equal(t, site.Calls(""), site.Calls(fnCompletion)+site.Calls(fnGradeItems), "only reads: nothing in Moodle touched")
	assert.Len(t, m.tracks, 1, "the enrolment is still waiting for a real poll")

	real := newMemSink()
	require.NoError(t, m.Poll(ctx, real))
	assert.Equal(t, []string{"P1 E-VCA passed=true dec=8 text= date=2024-06-01T00:00:00Z remark="}, results(real))
	assert.Empty(t, m.tracks)
}

func TestWebServiceSince(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	site := newSite(t)
	clk := clock.NewFake(time.Unix(t0, 0))
	m := wsSource(t, site, "full", "  since: 2024-06-01T00:01:00Z\n", clk, nil)
	for _, p := range []string{"P1", "P2", "P3"} {
		require.NoError(t, m.Enrol(ctx, source.Enrolment{PersonID: p, FirstName: "L", LastName: "N", Email: p + "@example.nl", ElearningCode: "E-VCA"}))
	}
	site.SetProgress(100, 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0 + 59}})
	site.SetProgress(101, 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0 + 60}})
	sink := newMemSink()
	require.NoError(t, m.Poll(ctx, sink))
	assert.Equal(t, []string{"P2 E-VCA passed=true dec= text= date=2024-06-01T00:01:00Z remark="}, results(sink))
	assert.Equal(t, []string{`[102,2,"P3","E-VCA"]`}, watched(t, sink), "the completion before since is done, not sent")
}
