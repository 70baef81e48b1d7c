package moodle

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/source"
)

// These tests replay what a real Moodle 4.5.5+ (Build: 20250613) answered
// (moodletest/testdata/4.5.5, recorded by record_test.go from the data
// moodletest/record/create_site.php creates): course 2 E-VCA "Veiligheid
// VCA" (all criteria, 50/100), 3 E-XL (any criterion: completed at the
// first, 2025-04-01 09:00 UTC, a second criterion on 2025-04-10), 4 E-GRP
// (separate groups), 5 E-HID (hidden course total 8.8/10), 6 E-MAN (marked
// complete without a completed criterion); anna is P100.

func TestRecordedCheckCallsMemberListsAsThePollDoes(t *testing.T) {
	t.Parallel()
	site := replay(t)
	ctx := context.Background()

	notes, err := recordedSource(t, site.URL, "full", nil).Check(ctx)
	require.NoError(t, err)
	assert.Contains(t, notes, "track_course_users: Moodle lists the active members of course E-VCA (id 2) to the token")

	// Without moodle/course:enrolreview Moodle refuses onlyactive=1: check
	// fails and names the capability, as the poll does.
	_, err = recordedSource(t, site.URL, "noreview", nil).Check(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "with onlyactive=1")
	assert.Contains(t, err.Error(), "give the token's user moodle/course:enrolreview")

	_, _, err = recordedPoll(t, site.URL, "noreview")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "moodle/course:enrolreview")
}

func TestRecordedSeparateGroupsAreWarnedOfAndCounted(t *testing.T) {
	t.Parallel()
	site := replay(t)

	sink, logs, err := recordedPoll(t, site.URL, "nogroups")
	require.NoError(t, err)
	assert.Regexp(t, `level=WARN msg="moodle course in separate groups mode lists no members to the token.*moodle/site:accessallgroups" adapter=moodle course_id=4 elearningcode=E-GRP bridge_enrolled=1`, logs)
	assert.Regexp(t, `level=WARN msg="moodle course denies the token its learners' completions \(accessdenied\).*moodle/site:accessallgroups.*course_id=4`, logs)
	assert.Equal(t, 1, skipped(sink)[skipMembersHidden])
	assert.Equal(t, 1, skipped(sink)[skipCompletionDenied])
	for _, r := range results(sink) {
		assert.NotContains(t, r, "E-GRP", "a completion Moodle denied is not sent")
	}

	_, err = recordedSource(t, site.URL, "nogroups", nil).Check(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "course E-GRP (id 4) is in separate groups mode and Moodle lists none of its members to the token: give the token's user moodle/site:accessallgroups")

	sink, _, err = recordedPoll(t, site.URL, "full")
	require.NoError(t, err)
	assert.Contains(t, results(sink), "P100 E-GRP passed=true dec=9 text= date=2025-03-05T14:00:00Z remark=BHV groepen 9/10")
}

func TestRecordedHiddenCourseTotalNamesViewHidden(t *testing.T) {
	t.Parallel()
	site := replay(t)

	sink, logs, err := recordedPoll(t, site.URL, "nohidden")
	require.NoError(t, err)
	assert.Regexp(t, `level=WARN msg="moodle course hides its course total from the token .*give the token's user moodle/grade:viewhidden; .*course_id=5 completions=1`, logs)
	assert.NotContains(t, logs, "has no course total grade")
	assert.Equal(t, 1, skipped(sink)[skipTotalHidden])
	for _, r := range results(sink) {
		assert.NotContains(t, r, "E-HID", "held until the token may see the total")
	}

	// With the capability the result is database mode's: 8.8 of 10.
	sink, _, err = recordedPoll(t, site.URL, "full")
	require.NoError(t, err)
	assert.Contains(t, results(sink), "P100 E-HID passed=true dec=8.8 text= date=2025-03-05T14:00:00Z remark=Verborgen totaal 8.8/10")
	assert.Zero(t, skipped(sink)[skipTotalHidden])
}

func TestRecordedCompletionDateFollowsAggregation(t *testing.T) {
	t.Parallel()
	site := replay(t)
	sink, logs, err := recordedPoll(t, site.URL, "full")
	require.NoError(t, err)
	results := results(sink)
	// All criteria: the last one (Moodle's course_completions.timecompleted 1741183200).
	assert.Contains(t, results, "P100 E-VCA passed=true dec=5 text= date=2025-03-05T14:00:00Z remark=Veiligheid VCA 50/100")
	// Any criterion: the first (course_completions.timecompleted 1743498000), not the later second one.
	assert.Contains(t, results, "P100 E-XL passed=true dec=7.5 text= date=2025-04-01T09:00:00Z remark=Excel gevorderd 7.5/10")
	// Marked complete without a completed criterion: sent without a date, warned of and counted.
	assert.Contains(t, results, "P100 E-MAN passed=true dec= text= date= remark=Handmatig afgerond /")
	assert.Regexp(t, `level=WARN msg="moodle course marked complete without a completed criterion.*course_id=6 completions=1`, logs)
	assert.Equal(t, 1, skipped(sink)[skipNoDate])
}

func TestRecordedRemarkHasTheCourseName(t *testing.T) {
	t.Parallel()
	site := replay(t)
	sink, _, err := recordedPoll(t, site.URL, "full")
	require.NoError(t, err)
	var remarks []string
	for _, c := range sink.Latest() {
		remarks = append(remarks, c.Remark)
	}
	assert.Contains(t, remarks, "Veiligheid VCA 50/100")
}

func TestRecordedCheckNamesViewAllDetailsForHiddenUsernames(t *testing.T) {
	t.Parallel()
	site := replay(t)
	_, err := recordedSource(t, site.URL, "nodetails", nil).Check(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `check_username "anna": Moodle hides usernames and ID numbers from the token's user, so it finds nobody by them: give the token's user moodle/user:viewalldetails`)
	assert.NotContains(t, err.Error(), "no Moodle user has this username")
}

func TestRecordedEnrolWithoutAllowedRoleAssignment(t *testing.T) {
	t.Parallel()
	site := replay(t)
	var logs bytes.Buffer
	err := recordedSource(t, site.URL, "noassign", &logs).Enrol(context.Background(), recordedEnrolment)
	require.Error(t, err)
	assert.True(t, source.IsPermanent(err), "retrying cannot help: %v", err)
	assert.Contains(t, err.Error(), "the token's role may not assign role_id 5 in Moodle course 2 (Elearningcode E-VCA): allow it under Site administration > Users > Permissions > Define roles > the token's role > Allow role assignments")
	assert.Contains(t, err.Error(), "wsusercannotassign")

	notes, err := recordedSource(t, site.URL, "noassign", nil).Check(context.Background())
	require.NoError(t, err, "Moodle shows it only when enrolling")
	found := false
	for _, n := range notes {
		found = found || strings.Contains(n, "Allow role assignments")
	}
	assert.True(t, found, "check says what it cannot see: %q", notes)
}

func TestRecordedFixturesCoverEveryToken(t *testing.T) {
	t.Parallel()
	site := replay(t)
	for _, token := range recordedTokens {
		assert.NotEmpty(t, site.Site.Tokens[token], "token %s is described in site.json", token)
	}
	assert.Equal(t, map[string]int64{"vca": 2, "excel": 3, "bhv": 4, "hidden": 5, "manual": 6}, site.Site.Courses)
	assert.Equal(t, int64(9), site.Site.Users["anna"])
}
