package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckReportsEveryProblem checks that check does not stop at the first
// mistake: every problem of every file is listed with file and line, in
// the operator's words, and check fails.
func TestCheckReportsEveryProblem(t *testing.T) {
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "    concurrancy: 3\n    timeout: 30d\n")
	lms := filepath.Join(filepath.Dir(cfgPath), "lms.d")
	for name, body := range map[string]string{
		"blackboard.yaml": "name: bb\n# not a kind cvbridge has\ntype: blackboard\n",
		"moodle.yaml":     "type: moodle\nschedule: '@every 5m'\nsettings:\n  mode: database\n  driver: mysql\n  dsn_env: MOODLE_DSN\n  lookback: 90d\n",
		"second.yaml":     "name: export\ntype: csvdrop\nsettings:\n  folder: drop\n",
		"csv.yaml":        "type: csvdrop\nsettings:\n  folder: drop\n  settle: 500\n  delimter: ';'\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(lms, name), []byte(body), 0o644))
	}

	out, err := runCLI(t, "check", "--offline", "--config", cfgPath)
	require.Error(t, err, out)
	assert.Equal(t, 1, exitCode(err), "a configuration mistake, not a command-line one")
	msg := err.Error()
	for _, want := range []string{
		`cvbridge.yaml:11: targets.coachview.concurrancy: unknown key (did you mean "concurrency"?)`,
		`cvbridge.yaml:12: targets.coachview.timeout: "30d" is not a duration; write it like 90m, 36h or 2160h (Go durations have no d`,
		`second.yaml:1: name: connection name "export" is also used by`,
		`blackboard.yaml:3: type: unknown adapter type "blackboard" (available: csvdrop`,
		`moodle.yaml:7: settings.lookback: "90d" is not a duration; write it like 90m, 36h or 2160h (Go durations have no d`,
		`csv.yaml:4: settings.settle: "500" is not a duration`,
		`csv.yaml:5: settings.delimter: unknown key`,
		// The adapter's own validation goes on past the decoding mistakes
		// and past its own first one; a missing key names its mapping.
		`csv.yaml:3: settings.columns.person: required`,
		`csv.yaml:3: settings.columns.passed: required`,
		`csv.yaml:3: settings.columns.elearningcode: required unless elearningcode_default`,
	} {
		assert.Contains(t, msg, want)
	}
	assert.Len(t, strings.Split(strings.TrimSpace(msg), "\n"), 10, msg)
	for _, goTalk := range []string{"cannot unmarshal", "!!", "time.Duration"} {
		assert.NotContains(t, msg, goTalk)
	}
}

// TestCheckRefusesEnrolCodesWithoutEnroller: enrol_codes on a Moodle
// connection without url and token (it cannot enrol) is a mistake at the
// key's line, found by check as at start, not a failure per message later.
func TestCheckRefusesEnrolCodesWithoutEnroller(t *testing.T) {
	t.Setenv("CVBRIDGE_TEST_MOODLE_DSN", "postgres://ro@127.0.0.1/moodle")
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	lms := filepath.Join(filepath.Dir(cfgPath), "lms.d")
	body := "name: moodle\ntype: moodle\nenrol_codes: [\"E-*\"]\nsettings:\n  mode: database\n  driver: postgres\n  dsn_env: CVBRIDGE_TEST_MOODLE_DSN\n"
	require.NoError(t, os.WriteFile(filepath.Join(lms, "moodle.yaml"), []byte(body), 0o644))

	out, err := runCLI(t, "check", "--offline", "--config", cfgPath)
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), `moodle.yaml:3: enrol_codes: connection "moodle" cannot enrol`)

	body += "  url: https://learn.example.nl\n  token_env: CVBRIDGE_TEST_MOODLE_DSN\n"
	require.NoError(t, os.WriteFile(filepath.Join(lms, "moodle.yaml"), []byte(body), 0o644))
	out, err = runCLI(t, "check", "--offline", "--config", cfgPath)
	if err != nil {
		assert.NotContains(t, err.Error(), "enrol_codes", out)
	}
}
