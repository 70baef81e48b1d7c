package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// newEnrolmentsFixture returns a configuration whose store's enrolment list
// holds four entries in two connections, made as the inbound processor
// makes them.
func newEnrolmentsFixture(t *testing.T) string {
	t.Helper()
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(filepath.Dir(cfgPath), "outbox.db"))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	for i, e := range []struct {
		connection, person, code string
		action                   inboundstore.Action
	}{
		{"export", "P-1", "MOO-1", inboundstore.ActionEnrol},
		{"export", "P-2", "MOO-1", inboundstore.ActionEnrol},
		{"moodle", "p-1", "MOO-2", inboundstore.ActionEnrol},
		{"export", "P-2", "MOO-1", inboundstore.ActionUnenrol},
		{"export", "P-3", "MOO-2", inboundstore.ActionEnrol},
	} {
		m, _, err := s.SaveMessage(ctx, inboundstore.Message{Source: inboundstore.SourceLink, DedupeKey: itoa(int64(i)),
			Verified: inboundstore.VerifiedBearer, Action: e.action, PersonID: e.person, ElearningCode: e.code,
			FirstName: "Jan", LastName: "Jansen", Email: "jan@example.org", State: inboundstore.StatePending}, inboundstore.KeepExisting)
		require.NoError(t, err)
		_, ok, err := s.ClaimMessage(ctx, m.ID, "setup", time.Now(), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.FinishMessage(ctx, inboundstore.Finish{ID: m.ID, Owner: "setup", State: inboundstore.StateDone, Connection: e.connection}))
	}
	return cfgPath
}

func TestEnrolmentsCommand(t *testing.T) {
	t.Parallel()
	cfg := newEnrolmentsFixture(t)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := cmdEnrolments(context.Background(), append([]string{"--config", cfg}, args...), &out)
		return out.String(), err
	}
	// rows returns "connection person code state" of each listed row and the last line.
	rows := func(out string) ([]string, string) {
		ls := lines(out)
		if strings.HasPrefix(ls[0], "note: ") {
			ls = ls[1:]
		}
		require.True(t, strings.HasPrefix(ls[0], "CONNECTION"), out)
		var got []string
		for _, l := range ls[1 : len(ls)-1] {
			f := strings.Fields(l)
			if f[0] == "showing" {
				continue
			}
			got = append(got, strings.Join(f[:4], " "))
		}
		return got, ls[len(ls)-1]
	}

	tests := []struct {
		name  string
		args  []string
		rows  []string
		count string
	}{
		{"all", nil, []string{"export P-1 MOO-1 active", "export P-2 MOO-1 unenrolled", "export P-3 MOO-2 active", "moodle p-1 MOO-2 active"},
			"4 enrolments: 3 active, 1 unenrolled"},
		{"by connection", []string{"--connection", "moodle"}, []string{"moodle p-1 MOO-2 active"}, "1 enrolment: 1 active, 0 unenrolled"},
		{"by person, any case", []string{"--person", "P-1"}, []string{"export P-1 MOO-1 active", "moodle p-1 MOO-2 active"},
			"2 enrolments: 2 active, 0 unenrolled"},
		{"by code", []string{"--code", "MOO-2"}, []string{"export P-3 MOO-2 active", "moodle p-1 MOO-2 active"}, "2 enrolments: 2 active, 0 unenrolled"},
		{"by state", []string{"--state", "unenrolled"}, []string{"export P-2 MOO-1 unenrolled"}, "1 enrolment: 0 active, 1 unenrolled"},
		{"combined", []string{"--connection", "export", "--state", "active", "--code", "MOO-1"}, []string{"export P-1 MOO-1 active"},
			"1 enrolment: 1 active, 0 unenrolled"},
		{"limited, counted in full", []string{"--limit", "1"}, []string{"export P-1 MOO-1 active"}, "4 enrolments: 3 active, 1 unenrolled"},
	}
	for _, tc := range tests {
		out, err := run(tc.args...)
		require.NoError(t, err, tc.name)
		got, count := rows(out)
		assert.Equal(t, tc.rows, got, "%s:\n%s", tc.name, out)
		assert.Equal(t, tc.count, count, tc.name)
		assert.NotContains(t, out, "Jansen", "%s: ids only", tc.name)
	}
	out, err := run("--limit", "1")
	require.NoError(t, err)
	assert.Contains(t, out, "showing 1; --limit 0 lists them all")

	out, err = run("--count", "--connection", "export")
	require.NoError(t, err)
	assert.Equal(t, "3 enrolments: 2 active, 1 unenrolled\n", out)
	out, err = run("--person", "nobody")
	require.NoError(t, err)
	assert.Equal(t, "0 enrolments: 0 active, 0 unenrolled\n", out)
	out, err = run("--connection", "gone")
	require.NoError(t, err)
	assert.Contains(t, out, `configures no LMS connection "gone"`)

	for _, bad := range [][]string{{"--state", "enrolled"}, {"--limit", "-1"}, {"P-1"}} {
		_, err := run(bad...)
		var ue usageError
		assert.ErrorAs(t, err, &ue, "%v", bad)
	}

	// forget erases personal data; the list keeps the ids Coachview needs.
	var fout bytes.Buffer
	require.NoError(t, cmdForget(context.Background(), []string{"--config", cfg, "p-1"}, &fout))
	out, err = run("--person", "P-1")
	require.NoError(t, err)
	got, _ := rows(out)
	assert.Equal(t, []string{"export P-1 MOO-1 active", "moodle p-1 MOO-2 active"}, got)
}

// TestRenderDryRunOffersTheEnrolmentList: the dry run of cvbridge render
// offers a source the connection's enrolment list from the real store, as
// the daemon does, so a preview of Moodle's web-service mode polls whom the
// daemon would.
func TestRenderDryRunOffersTheEnrolmentList(t *testing.T) {
	t.Parallel()
	cfg := newEnrolmentsFixture(t)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(filepath.Dir(cfg), "outbox.db"))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	var sink source.Sink = &dryRunSink{store: s, connection: "export"}
	list, err := sink.Enrolments(ctx)
	require.NoError(t, err)
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%s %s %t", e.PersonID, e.ElearningCode, e.Active))
	}
	assert.Equal(t, []string{"P-1 MOO-1 true", "P-2 MOO-1 false", "P-3 MOO-2 true"}, got)
}

// TestRenderDryRunShowsProblems: what a source reports it could not use
// (Moodle hiding a course's members from the token, say) appears among
// the rendered messages, where the daemon would count it.
func TestRenderDryRunShowsProblems(t *testing.T) {
	var out strings.Builder
	var sink source.Sink = &dryRunSink{out: &out}
	sink.ReportProblems(source.Problems{BadRows: 1, Skipped: map[string]int{"members_hidden": 2, "grade_hidden": 1},
		Last: "Moodle hid data from the web-service token"})
	assert.Equal(t, "<!-- PROBLEMS: 1 bad rows skipped, 1 grade_hidden, 2 members_hidden: Moodle hid data from the web-service token -->\n", out.String())
	assert.True(t, sink.DryRun())
}
