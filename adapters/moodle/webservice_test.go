package moodle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// wsSource builds a source talking to site with the given token.
func wsSource(t *testing.T, site *moodletest.Server, token, extra string, clk clock.Clock, logs *bytes.Buffer) *Moodle {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.token"), []byte(token+"\n"), 0o600))
	m, err := newTestMoodle(connection(t, dir, "  mode: webservice\n  url: "+site.URL+"\n  token_file: moodle.token\n"+extra, logs), clk, nil)
	require.NoError(t, err)
	return m
}

func newSite(t *testing.T) *moodletest.Server {
	site := moodletest.New(t, map[string]moodletest.Token{
		"full":      {ViewIDNumbers: true, CourseUpdate: true},
		"noidnum":   {},
		"pollsonly": {Functions: []string{fnCompletion, fnGradeItems, fnSiteInfo}},
	})
	site.AddCourse(moodletest.Course{ID: 2, ShortName: "vca", FullName: "Veiligheid", IDNumber: "E-VCA"})
	site.AddCourse(moodletest.Course{ID: 3, ShortName: "excel", FullName: "Excel", IDNumber: "E-XL", NoManualEnrol: true})
	return site
}

func TestWebServicePollCallsGrowWithOpenEnrolments(t *testing.T) {
	t.Parallel()
	site := newSite(t)
	clk := clock.NewFake(time.Unix(t0, 0))
	m := wsSource(t, site, "full", "  result: decimal\n  concurrency: 3\n", clk, nil)
	ctx := context.Background()

	// Twenty site users the bridge knows nothing of, and five it enrolled.
	for i := range 20 {
		id := site.AddUser(moodletest.User{Username: "other" + string(rune('a'+i)), FirstName: "O", LastName: "X", Email: "o" + string(rune('a'+i)) + "@x.nl"})
		site.Enrol(id, 2)
	}
	var users []int64
	for i := range 5 {
		p := "P" + string(rune('0'+i))
		require.NoError(t, m.Enrol(ctx, source.Enrolment{PersonID: p, FirstName: "L", LastName: "N", Email: p + "@example.nl", ElearningCode: "E-VCA"}))
		u, ok := site.User(int64(120 + i))
		require.True(t, ok)
		users = append(users, u.ID)
	}
	sink := newMemSink()
	for i := range 5 {
		sink.Record("P"+string(rune('0'+i)), "E-VCA", true) // the core lists what the enroller did
	}
	// expect polls once and checks its completion and grade calls; no
	// other call is made (following the enrolment list costs nothing for
	// enrolments the enroller made in this process).
	expect := func(want int, msg string) {
		t.Helper()
		site.ResetCalls()
		require.NoError(t, m.Poll(ctx, sink))
		got := site.Calls(fnCompletion) + site.Calls(fnGradeItems)
		assert.Equal(t, site.Calls(""), got, "no other calls: %s", msg)
		assert.Equal(t, want, got, msg)
	}

	expect(5, "one status call per open enrolment, none for the other 20 users")
	expect(0, "nothing due before the first back-off ends")
	clk.Advance(time.Hour)
	expect(5, "due again after 1h")
	clk.Advance(time.Hour)
	expect(0, "the second wait is 2h")

	// Two complete; they are checked, graded, sent and never asked again.
	site.SetProgress(users[0], 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0 + 100, t0 + 3600}, Grade: "66.66667", GradeMax: "100"})
	site.SetProgress(users[1], 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0 + 50}})
	clk.Advance(time.Hour)
	expect(5+2, "five status calls and a grade report for each of the two completed")
	assert.Equal(t, []string{
		// The date is the latest criterion's; the grade is exact (66.66667/100 × 10).
		"P0 E-VCA passed=true dec=6.666667 text= date=2024-06-01T01:00:00Z remark=",
		"P1 E-VCA passed=true dec= text= date=2024-06-01T00:00:50Z remark=",
	}, results(sink))
	for _, n := range []time.Duration{4, 8, 16, 24, 24} {
		clk.Advance(n * time.Hour)
		expect(3, fmt.Sprintf("after %s only the three open enrolments", n*time.Hour))
	}

	var cur wsCursor
	require.NoError(t, json.Unmarshal(sink.LastCursor(), &cur))
	assert.Len(t, cur.Enrolments, 3)
	assert.Equal(t, 8, cur.Enrolments[0].Checks, "checked at 0h, 1h, 3h, 7h, 15h, 31h, 55h and 79h")
}

func TestWebServiceDiscoversCourseUsers(t *testing.T) {
	t.Parallel()
	site := newSite(t)
	clk := clock.NewFake(time.Unix(t0, 0))
	logs := &bytes.Buffer{}
	m := wsSource(t, site, "full", "  track_course_users: true\n", clk, logs)
	ctx := context.Background()
	a := site.AddUser(moodletest.User{Username: "anna", IDNumber: "P100", FirstName: "A", LastName: "J", Email: "a@x.nl"})
	b := site.AddUser(moodletest.User{Username: "bram", FirstName: "B", LastName: "V", Email: "b@x.nl"}) // no idnumber
	site.Enrol(a, 2)
	site.Enrol(b, 2)
	site.SetProgress(a, 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0}})
	site.SetProgress(b, 2, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0}})

	sink := newMemSink()
	require.NoError(t, m.Poll(ctx, sink))
	assert.Equal(t, []string{"P100 E-VCA passed=true dec= text= date=2024-06-01T00:00:00Z remark="}, results(sink))
	assert.Contains(t, logs.String(), "user_id=101")
	assert.NotContains(t, logs.String(), "bram")

	site.ResetCalls()
	clk.Advance(2 * time.Hour)
	require.NoError(t, m.Poll(ctx, sink))
	assert.Equal(t, 2, site.Calls(fnEnrolledUsers), "members of both mapped courses read again after discover_every")
	assert.Equal(t, 1, site.Calls(fnCompletion), "the sent completion is not checked again")
}

func TestEnroller(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jan := source.Enrolment{PersonID: "P200", FirstName: "Jan", Infix: "van der", LastName: "Berg", Email: "jan@example.nl", ElearningCode: "E-VCA"}

	t.Run("creates with Dutch name split and enrols", func(t *testing.T) {
		t.Parallel()
		site := newSite(t)
		m := wsSource(t, site, "full", "  role_id: 7\n  auth: oauth2\n", clock.System{}, nil)
		require.NoError(t, m.Enrol(ctx, jan))
		u, ok := site.User(100)
		require.True(t, ok)
		assert.Equal(t, moodletest.User{ID: 100, Username: "p200", FirstName: "Jan", LastName: "van der Berg", Email: "jan@example.nl", IDNumber: "P200", Auth: "oauth2"}, u)
		role, ok := site.Enrolled(100, 2)
		assert.True(t, ok)
		assert.Equal(t, int64(7), role)
		assert.Equal(t, "7", site.LastRequest().Get("enrolments[0][roleid]"))
		assert.Equal(t, "2", site.LastRequest().Get("enrolments[0][courseid]"))

		// Repeating finds the user and changes nothing.
		site.ResetCalls()
		require.NoError(t, m.Enrol(ctx, jan))
		assert.Equal(t, 0, site.Calls(fnCreateUsers))
		assert.Equal(t, 0, site.Calls(fnUpdateUsers))
		assert.Equal(t, 1, site.UserCount())

		// A changed e-mail is updated.
		moved := jan
		moved.Email = "jan@elders.nl"
		require.NoError(t, m.Enrol(ctx, moved))
		u, _ = site.User(100)
		assert.Equal(t, "jan@elders.nl", u.Email)

		// Unenrol removes access but keeps the user; twice is harmless.
		require.NoError(t, m.Unenrol(ctx, "P200", "E-VCA"))
		require.NoError(t, m.Unenrol(ctx, "P200", "E-VCA"))
		_, ok = site.Enrolled(100, 2)
		assert.False(t, ok)
		assert.Equal(t, 1, site.UserCount())
		require.NoError(t, m.Unenrol(ctx, "P999", "E-VCA"), "an unknown person is not enrolled")
	})

	t.Run("name_split none keeps the infix in middlename", func(t *testing.T) {
		t.Parallel()
		site := newSite(t)
		m := wsSource(t, site, "full", "  name_split: none\n", clock.System{}, nil)
		require.NoError(t, m.Enrol(ctx, jan))
		u, _ := site.User(100)
		assert.Equal(t, "Berg", u.LastName)
		assert.Equal(t, "van der", u.MiddleName)
	})

	errCases := []struct {
		name      string
		token     string
		setup     func(*moodletest.Server)
		enrol     source.Enrolment
		permanent bool
		says      string
	}{
		{"no manual enrolment instance", "full", nil, func() source.Enrolment { e := jan; e.ElearningCode = "E-XL"; return e }(), true,
			"enable the manual enrolment method in Moodle course 3"},
		{"unknown course", "full", nil, func() source.Enrolment { e := jan; e.ElearningCode = "E-NOPE"; return e }(), true,
			"no Moodle course has idnumber E-NOPE"},
		{"idnumber not visible to the token", "noidnum", func(s *moodletest.Server) {
			s.AddUser(moodletest.User{Username: "p200", IDNumber: "P200", FirstName: "Jan", LastName: "van der Berg", Email: "jan@example.nl"})
		}, jan, true, "moodle/user:viewalldetails"},
		{"duplicate e-mail", "full", func(s *moodletest.Server) {
			s.AddUser(moodletest.User{Username: "someone", FirstName: "S", LastName: "O", Email: "jan@example.nl"})
		}, jan, true, "allowaccountssameemail"},
		{"changed e-mail already another user's", "full", func(s *moodletest.Server) {
			s.AddUser(moodletest.User{Username: "p200", IDNumber: "P200", FirstName: "Jan", LastName: "van der Berg", Email: "jan@old.nl"})
			s.AddUser(moodletest.User{Username: "someone", FirstName: "S", LastName: "O", Email: "jan@example.nl"})
		}, jan, true, "another Moodle user already has the new e-mail address"},
		{"invalid token", "wrong", nil, jan, true, "token_file/token_env"},
		{"function not allowed", "pollsonly", nil, jan, true, "External services"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			site := newSite(t)
			if tc.setup != nil {
				tc.setup(site)
			}
			m := wsSource(t, site, tc.token, "", clock.System{}, nil)
			err := m.Enrol(ctx, tc.enrol)
			require.Error(t, err)
			assert.Equal(t, tc.permanent, source.IsPermanent(err))
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), tc.enrol.Email,
				"the reason is logged and kept past the erasure of the person's data: it never quotes the e-mail address")
		})
	}

	t.Run("moodle down is transient", func(t *testing.T) {
		t.Parallel()
		site := newSite(t)
		m := wsSource(t, site, "full", "", clock.System{}, nil)
		site.Close()
		err := m.Enrol(ctx, jan)
		require.Error(t, err)
		assert.False(t, source.IsPermanent(err))
	})
}
