package moodle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// The fixtures under moodletest/testdata/<release> were recorded from a
// real Moodle by record_test.go (build tag moodlerecord), which runs the
// scenarios below against it: the tests here replay them, so each call the
// adapter makes must be one that Moodle really answered.

// recordedRelease is the folder of fixtures the tests replay.
const recordedRelease = "4.5.5"

// recordedSettings are the settings every recorded scenario uses: member
// lists read, grades and course names needed.
const recordedSettings = "  track_course_users: true\n  check_username: anna\n  result: decimal\n" +
	"  remark: \"{{.CourseName}} {{.Grade}}/{{.Max}}\"\n"

// recordedTokens are the recorder's tokens: full has every capability the
// documentation lists; each other lacks one thing.
var recordedTokens = []string{"full", "noreview", "nogroups", "nohidden", "nodetails", "noassign"}

// recordedList is the bridge's enrolment list of the recorded polls.
var recordedList = []source.Enrolled{
	{PersonID: "P100", ElearningCode: "E-VCA", Active: true, Ref: 1},
	{PersonID: "P100", ElearningCode: "E-XL", Active: true, Ref: 2},
	{PersonID: "P100", ElearningCode: "E-GRP", Active: true, Ref: 3},
	{PersonID: "P100", ElearningCode: "E-HID", Active: true, Ref: 4},
	{PersonID: "P100", ElearningCode: "E-MAN", Active: true, Ref: 5},
	{PersonID: "P101", ElearningCode: "E-VCA", Active: true, Ref: 6},
}

// recordedEnrolment is the enrolment tried with the token whose role may
// not assign the Student role.
var recordedEnrolment = source.Enrolment{PersonID: "P200", FirstName: "Piet", LastName: "Smit",
	Email: "piet@example.nl", ElearningCode: "E-VCA"}

// recordedNow is the fake clock of the recorded polls.
var recordedNow = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// recordedSource builds a webservice-mode source for url with token.
func recordedSource(t *testing.T, url, token string, logs *bytes.Buffer) *Moodle {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.token"), []byte(token+"\n"), 0o600))
	m, err := newTestMoodle(connection(t, dir, "  mode: webservice\n  url: "+url+"\n  token_file: moodle.token\n"+recordedSettings, logs),
		clock.NewFake(recordedNow), nil)
	require.NoError(t, err)
	return m
}

// skipped sums what the source reported to sink as skipped, by reason.
func skipped(sink *memSink) map[string]int {
	var all source.Problems
	for _, p := range sink.Problems() {
		all = all.Add(p)
	}
	return all.Skipped
}

// recordedPoll polls once with token against url with the recorded
// enrolment list.
func recordedPoll(t *testing.T, url, token string) (*memSink, string, error) {
	t.Helper()
	var logs bytes.Buffer
	m := recordedSource(t, url, token, &logs)
	sink := newMemSink()
	sink.SetEnrolments(append([]source.Enrolled(nil), recordedList...))
	err := m.Poll(context.Background(), sink)
	return sink, logs.String(), err
}

// replay starts a stand-in Moodle answering with the recorded fixtures.
func replay(t *testing.T) *moodletest.Replay {
	t.Helper()
	r := moodletest.NewReplay(t, recordedRelease)
	t.Logf("replaying %s", r.Site)
	return r
}
