package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/source"
)

func TestSkippedCountedByReason(t *testing.T) {
	t.Parallel()
	m := New(Options{})
	m.Problems("moodle", source.Problems{Skipped: map[string]int{"members_hidden": 1, "total_hidden": 2}})
	m.Problems("moodle", source.Problems{Skipped: map[string]int{"total_hidden": 1}}.Add(source.Problems{Skipped: map[string]int{"no_date": 1}}))
	want := `
# HELP cvbridge_intake_skipped_total What an LMS connection's source could not read in full because the LMS hid it (moodle: members_hidden, total_hidden, completion_denied, no_date), by connection and reason; the log says which course and the fix.
# TYPE cvbridge_intake_skipped_total counter
cvbridge_intake_skipped_total{connection="moodle",reason="members_hidden"} 1
cvbridge_intake_skipped_total{connection="moodle",reason="no_date"} 1
cvbridge_intake_skipped_total{connection="moodle",reason="total_hidden"} 3
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cvbridge_intake_skipped_total"))
	m.Forget([]string{"moodle"}, nil)
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(""), "cvbridge_intake_skipped_total"))
}
