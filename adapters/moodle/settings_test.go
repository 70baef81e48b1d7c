package moodle

import (
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

func TestRegisteredAndDefaults(t *testing.T) {
	t.Parallel()
	require.True(t, adapters.Known("moodle"))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.dsn"), []byte("postgres://ro@127.0.0.1/moodle\n"), 0o600))
	c := connection(t, dir, "  mode: database\n  driver: postgres\n  dsn_file: moodle.dsn\n", nil)
	b, err := adapters.Build("moodle", c.Connection, c.node)
	require.NoError(t, err)
	assert.False(t, b.Caps.Enrol, "no enrolment without url and token")
	assert.Nil(t, b.Enroller())
	m := b.Source.(*Moodle)
	assert.Equal(t, "mdl_", m.settings.Prefix)
	assert.Equal(t, 500, m.settings.PageSize)
	assert.Equal(t, "idnumber", m.settings.PersonField)
	assert.Nil(t, m.client, "no enroller without url")
}

func TestSettingsErrorsNameKeyAndLine(t *testing.T) {
	t.Parallel()
	db := "  mode: database\n  driver: postgres\n  dsn_env: X\n"
	wsm := "  mode: webservice\n  url: https://learn.example.nl\n  token_env: X\n"
	cases := []struct{ name, settings, key, says string }{
		{"mode missing", "  driver: postgres\n", "mode", "database or webservice"},
		{"unknown key", db + "  prefx: mdl_\n", "prefx", `did you mean "prefix"`},
		{"bad driver", "  mode: database\n  driver: oracle\n  dsn_env: X\n", "driver", "postgres or mysql"},
		{"two dsn sources", db + "  dsn_file: x\n", "dsn_file", "exactly one"},
		{"plain http", "  mode: webservice\n  url: http://learn.example.nl\n  token_env: X\n", "url", "https"},
		{"gradepass via ws", wsm + "  passed: gradepass\n", "passed", "pass mark"},
		{"threshold out of range", wsm + "  passed: threshold\n  threshold: 120\n", "threshold", "at most 100"},
		{"concurrency too high", wsm + "  concurrency: 8\n", "concurrency", "1 to 4"},
		{"bad person field", db + "  person_field: phone\n", "person_field", "profile:<shortname>"},
		{"courses without field", db + "  courses: {E-1: 2}\n", "courses", "course_field: courses"},
		{"unknown placeholder", db + "  result: text\n  text_format: \"{grade}/{maximum}\"\n", "text_format", "{maximum}"},
		{"bad remark", db + "  remark: \"{{.Nope}}\"\n", "remark", "Nope"},
		{"bad name split", db + "  name_split: german\n", "name_split", "dutch or none"},
		{"since not a date", db + "  since: last year\n", "since", "2025-01-01"},
		{"check_username without url", db + "  check_username: anna\n", "check_username", "url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := build(connection(t, t.TempDir(), tc.settings, nil))
			require.Error(t, err)
			var ce *strictyaml.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.key, ce.Key)
			assert.Equal(t, lmsFile, ce.File)
			assert.Greater(t, ce.Line, 3)
			assert.Contains(t, ce.Msg, tc.says)
		})
	}
}

func TestSinceDateIsMidnightInTheProvidersZone(t *testing.T) {
	t.Parallel()
	cases := []struct{ since, want string }{
		{"2024-06-01", "2024-05-31T22:00:00Z"},
		{"2024-01-01", "2023-12-31T23:00:00Z"},
		{"2024-06-01T12:00:00+02:00", "2024-06-01T10:00:00Z"},
		{"", "0001-01-01T00:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.since, func(t *testing.T) {
			t.Parallel()
			m, err := build(connection(t, t.TempDir(), "  mode: database\n  driver: postgres\n  dsn_env: PATH\n  since: \""+tc.since+"\"\n", nil))
			require.NoError(t, err)
			assert.Equal(t, tc.want, m.(*Moodle).settings.since.UTC().Format(time.RFC3339))
		})
	}
}

func TestSecretsFromFileOrEnvironment(t *testing.T) {
	t.Parallel()
	_, err := build(connection(t, t.TempDir(), "  mode: database\n  driver: mysql\n  dsn_file: missing.dsn\n", nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dsn_file")
	_, err = build(connection(t, t.TempDir(), "  mode: webservice\n  url: https://learn.example.nl\n  token_env: CVBRIDGE_UNSET_TOKEN_VAR\n", nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CVBRIDGE_UNSET_TOKEN_VAR is not set")
}

func TestExactDecimal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		num, den int64
		want     string
	}{
		{15, 2, "7.5"},
		{20, 3, "6.6666666666661"}, // inexact: truncated, then a sticky 1
		{6745, 1000, "6.745"},      // exact ties stay exact for the core's rounding mode
		{-1, 3, "-0.3333333333331"},
		{0, 1, "0"},
		{100, 1, "100"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, exactDecimal(big.NewRat(tc.num, tc.den)), "%d/%d", tc.num, tc.den)
	}
}

func TestParseNumberNeverUsesFloat(t *testing.T) {
	t.Parallel()
	r, err := parseNumber("0.10000")
	require.NoError(t, err)
	assert.Equal(t, "1/10", r.String())
	r, err = parseNumber("5.0e-5")
	require.NoError(t, err)
	assert.Equal(t, "1/20000", r.String())
	_, err = parseNumber("NaN")
	assert.Error(t, err)
}

// TestValidateReportsEveryMistake: three mistakes in one LMS file give
// three messages, each with its line and key; the checks that need the
// refused url (check_username) are skipped, not run on a bad value.
func TestValidateReportsEveryMistake(t *testing.T) {
	t.Parallel()
	_, err := build(connection(t, t.TempDir(), `  mode: webservice
  url: "ftp://learn.example.nl"
  token_env: CVBRIDGE_UNSET_TOKEN_VAR
  concurrency: 9
  check_username: teacher
  passed: threshold
  threshold: "200"
`, nil))
	var list strictyaml.Errors
	require.ErrorAs(t, err, &list)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3, err.Error())
	assert.Contains(t, lines[0], lmsFile+":5: url: ")
	assert.Contains(t, lines[1], lmsFile+":7: concurrency: must be 1 to 4")
	assert.Contains(t, lines[2], lmsFile+":10: threshold: must be a percentage")
}

// TestEnrolDeclaredOnlyWithToken: a Moodle connection declares it can
// enrol only with url and token, so enrol_codes on one without them is
// refused at start rather than failing every enrolment message.
func TestEnrolDeclaredOnlyWithToken(t *testing.T) {
	t.Setenv("CVBRIDGE_TEST_MOODLE_TOKEN", "0123456789abcdef\n")
	t.Setenv("CVBRIDGE_TEST_MOODLE_DSN", "postgres://ro@127.0.0.1/moodle")
	for _, tc := range []struct {
		name, settings string
		enrol          bool
	}{
		{"database mode", "  mode: database\n  driver: postgres\n  dsn_env: CVBRIDGE_TEST_MOODLE_DSN\n", false},
		{"database mode with a token", "  mode: database\n  driver: postgres\n  dsn_env: CVBRIDGE_TEST_MOODLE_DSN\n  url: https://learn.example.nl\n  token_env: CVBRIDGE_TEST_MOODLE_TOKEN\n", true},
		{"webservice mode", "  mode: webservice\n  url: https://learn.example.nl\n  token_env: CVBRIDGE_TEST_MOODLE_TOKEN\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connection(t, t.TempDir(), tc.settings, nil)
			b, err := adapters.Build("moodle", c.Connection, c.node)
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Source.(*Moodle).Close() })
			assert.Equal(t, tc.enrol, b.Caps.Enrol)
			assert.Equal(t, tc.enrol, b.Enroller() != nil)
			assert.True(t, b.Caps.Watch && b.Caps.Check && b.Caps.DryRun)
		})
	}
}
