package scorm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

func TestSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dsn"), []byte("postgres://u:secret@db/moodle\n"), 0o600))
	const head = "driver: postgres\ndsn_file: dsn\n"
	tests := []struct {
		name, yaml, err string
	}{
		{name: "defaults", yaml: head},
		{name: "unknown key", yaml: head + "lookbak: 1h\n", err: `lms.yaml:3: lookbak: unknown key (did you mean "lookback"?)`},
		{name: "bad driver", yaml: "driver: oracle\ndsn_file: dsn\n", err: "lms.yaml:1: driver: must be postgres or mysql"},
		{name: "no dsn", yaml: "driver: mysql\n", err: "set exactly one of dsn_file and dsn_env"},
		{name: "both dsn", yaml: head + "dsn_env: X\n", err: "set exactly one"},
		{name: "missing dsn file", yaml: "driver: mysql\ndsn_file: nope\n", err: "dsn_file: cannot read "},
		{name: "empty env", yaml: "driver: mysql\ndsn_env: CVB_SCORM_TEST_UNSET\n", err: "dsn_env: environment variable CVB_SCORM_TEST_UNSET is not set"},
		{name: "bad prefix", yaml: head + "prefix: \"mdl; drop\"\n", err: "prefix: must be Moodle's table prefix"},
		{name: "bad preset", yaml: head + "preset: rustici\n", err: "preset: must be moodle or custom"},
		{name: "custom without query", yaml: head + "preset: custom\n", err: "query: required for preset custom"},
		{name: "custom without cursor", yaml: head + "preset: custom\nquery: SELECT 1\n", err: "must use :cursor_time"},
		{name: "custom unknown param", yaml: head + "preset: custom\nquery: SELECT 1 WHERE a > :since\n", err: "unknown parameter :since"},
		{name: "custom good", yaml: head + "preset: custom\nquery: SELECT x::int FROM t WHERE m >= :cursor_time\n"},
		{name: "query on moodle", yaml: head + "query: SELECT 1\n", err: "query: only for preset custom"},
		{name: "short lookback", yaml: head + "lookback: 10s\n", err: "lookback: must be at least 1m0s"},
		{name: "page size", yaml: head + "page_size: 0\n", err: "page_size: must be 1…10000"},
		{name: "named without identifier", yaml: head + "sco_rule: named\n", err: "sco_identifier: required"},
		{name: "identifier without named", yaml: head + "sco_identifier: x\n", err: "only with sco_rule named"},
		{name: "attempt", yaml: head + "attempt: worst\n", err: "attempt: must be first_passing, best or last"},
		{name: "threshold missing", yaml: head + "passed: threshold\n", err: "threshold: must be a number from 0 to scale_max"},
		{name: "threshold above scale", yaml: head + "passed: threshold\nthreshold: \"11\"\nscale_max: \"10\"\n", err: "threshold: must be a number"},
		{name: "threshold comma", yaml: head + "passed: threshold\nthreshold: \"5,5\"\nscale_max: \"10\"\n"},
		{name: "threshold without rule", yaml: head + "threshold: \"5\"\n", err: "only with passed: threshold"},
		{name: "text format", yaml: head + "result: text\ntext_format: \"%\"\n", err: "must contain {score}"},
		{name: "codes key", yaml: head + "codes: {\"12\": E}\n", err: "key \"12\" must be scorm:<id> or course:<id>"},
		{name: "codes needed", yaml: head + "course_field: codes\n", err: "codes: course_field codes needs a codes map"},
		{name: "person field", yaml: head + "person_field: firstname\n", err: "person_field: must be idnumber"},
		{name: "unenrol without enrol", yaml: head + "unenrol_sql: DELETE FROM e WHERE p = :person_id\n", err: "unenrol_sql: needs enrol_sql"},
		{name: "enrol without unenrol", yaml: head + "enrol_sql: INSERT INTO e VALUES (:person_id, :elearning_code)\n", err: "unenrol_sql: required"},
		{name: "enrol without code", yaml: head + "enrol_sql: INSERT INTO e VALUES (:person_id)\n", err: "enrol_sql: must use :person_id and :elearning_code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var node yaml.Node
			require.NoError(t, yaml.Unmarshal([]byte(tc.yaml), &node))
			src, err := buildSource(t, filepath.Join(dir, "lms.yaml"), dir, &node)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.NotContains(t, err.Error(), "secret", "the DSN never appears in errors")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "postgres://u:secret@db/moodle", src.dsn)
			assert.Equal(t, 24*time.Hour, src.cfg.Lookback)
		})
	}
}

// buildSource builds a source for the settings node through the registry,
// as the core does.
func buildSource(t *testing.T, file, dir string, node *yaml.Node) (*Source, error) {
	b, err := adapters.Build("scorm", adapters.Connection{Name: "test", File: file, BaseDir: dir}, node)
	if err != nil {
		return nil, err
	}
	src := b.Source.(*Source)
	t.Cleanup(func() { assert.NoError(t, src.Close()) })
	return src, nil
}

func TestCompileNamed(t *testing.T) {
	t.Parallel()
	allowed := []string{"cursor_time", "person_id"}
	tests := []struct {
		name, in, sql, err string
		names              []string
	}{
		{name: "params", in: "SELECT a FROM t WHERE m >= :cursor_time AND p = :person_id;", sql: "SELECT a FROM t WHERE m >= ? AND p = ?", names: []string{"cursor_time", "person_id"}},
		{name: "cast kept", in: "SELECT a::text FROM t WHERE m >= :cursor_time::bigint", sql: "SELECT a::text FROM t WHERE m >= ?::bigint", names: []string{"cursor_time"}},
		{name: "quotes and comments kept", in: "SELECT ':x', \"a:b\", `c:d` -- :y\nFROM t /* :z */ WHERE m >= :cursor_time", sql: "SELECT ':x', \"a:b\", `c:d` -- :y\nFROM t /* :z */ WHERE m >= ?", names: []string{"cursor_time"}},
		{name: "doubled quote", in: "SELECT 'it''s :x' WHERE m >= :cursor_time", sql: "SELECT 'it''s :x' WHERE m >= ?", names: []string{"cursor_time"}},
		{name: "unknown", in: "SELECT :nope", err: "unknown parameter :nope"},
		{name: "question mark", in: "SELECT a FROM t WHERE b = ?", err: "contains '?'"},
		{name: "dollar", in: "SELECT a FROM t WHERE b = $1", err: "positional parameter"},
		{name: "two statements", in: "SELECT 1; DELETE FROM t", err: "exactly one statement"},
		{name: "open quote", in: "SELECT 'abc", err: "unterminated ' quote"},
		{name: "open comment", in: "SELECT 1 /* x", err: "unterminated /* comment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := compileNamed(tc.in, allowed)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.sql, n.sql)
			assert.Equal(t, tc.names, n.names)
		})
	}
	n, err := compileNamed("SELECT :person_id, :person_id", allowed)
	require.NoError(t, err)
	q, args := n.bind("postgres", map[string]any{"person_id": "p1"})
	assert.Equal(t, "SELECT $1, $2", q)
	assert.Equal(t, []any{"p1", "p1"}, args)
}

func TestUnixOf(t *testing.T) {
	t.Parallel()
	ams, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	newYork, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// lateEvening is 23:30 on 1 June in Amsterdam (21:30 UTC): 23:30 UTC
	// would already be the next day there.
	lateEvening := time.Date(2024, 6, 1, 23, 30, 0, 0, ams).Unix()
	tests := []struct {
		name     string
		in       any
		zoneless bool // the column's type has no zone (see zonelessType)
		want     int64
		err      string
	}{
		{name: "int", in: int64(1740000000), want: 1740000000},
		{name: "float", in: 1740000000.5, want: 1740000000},
		{name: "text seconds", in: []byte("1740000000"), want: 1740000000},
		{name: "time", in: time.Unix(1740000000, 0), want: 1740000000},
		{name: "naive text in location", in: "2025-02-19 22:20:00", want: 1740000000},
		{name: "zoned text", in: "2025-02-19T21:20:00Z", want: 1740000000},
		{name: "junk", in: "yesterday", err: "neither Unix seconds nor a timestamp"},
		{name: "null", in: nil, err: "is NULL"},
		{name: "unexpected type", in: true, err: "unexpected type bool"},
		// The shapes the drivers give, as seen from lib/pq 1.12 and
		// go-sql-driver/mysql 1.10 against PostgreSQL and MariaDB.
		{
			name: "lib/pq timestamp: nameless zero offset, read in location",
			in:   time.Date(2024, 6, 1, 23, 30, 0, 0, time.FixedZone("", 0)), zoneless: true, want: lateEvening,
		},
		{
			name: "lib/pq timestamp with a fraction",
			in:   time.Date(2024, 6, 1, 23, 30, 0, 500_000_000, time.FixedZone("", 0)), zoneless: true, want: lateEvening,
		},
		{
			name: "lib/pq timestamptz in a UTC session keeps its instant",
			in:   time.Date(2024, 6, 1, 21, 30, 0, 0, time.UTC), want: lateEvening,
		},
		{
			name: "lib/pq timestamptz in an Amsterdam session keeps its instant",
			in:   time.Date(2024, 6, 1, 23, 30, 0, 0, ams), want: lateEvening,
		},
		{
			name: "lib/pq timestamptz at offset zero in a session zone Go cannot load keeps its instant",
			in:   time.Date(2024, 6, 1, 21, 30, 0, 0, time.FixedZone("", 0)), want: lateEvening,
		},
		{
			name: "go-sql-driver/mysql DATETIME with parseTime and the default loc UTC",
			in:   time.Date(2024, 6, 1, 23, 30, 0, 0, time.UTC), zoneless: true, want: lateEvening,
		},
		{
			name: "go-sql-driver/mysql DATETIME with parseTime and another loc",
			in:   time.Date(2024, 6, 1, 23, 30, 0, 0, newYork), zoneless: true, want: lateEvening,
		},
		{
			name: "go-sql-driver/mysql DATETIME without parseTime",
			in:   []byte("2024-06-01 23:30:00.000000"), zoneless: true, want: lateEvening,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := unixOf(tc.in, tc.zoneless, ams)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, time.Unix(tc.want, 0).UTC(), time.Unix(got, 0).UTC())
		})
	}
}

// TestValidateReportsEveryMistake: three mistakes in one LMS file give
// three messages, each with its line and key; the threshold, on the
// refused scale_max's scale, is not checked against it.
func TestValidateReportsEveryMistake(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("driver: oracle\ndsn_file: dsn\nprefix: \"mdl; drop\"\npassed: threshold\nscale_max: \"-1\"\nthreshold: \"50\"\n"), &node))
	file := filepath.Join(dir, "lms.yaml")
	_, err := buildSource(t, file, dir, &node)
	var list strictyaml.Errors
	require.ErrorAs(t, err, &list)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3, err.Error())
	assert.Contains(t, lines[0], file+":1: driver: must be postgres or mysql")
	assert.Contains(t, lines[1], file+":3: prefix: must be Moodle's table prefix")
	assert.Contains(t, lines[2], file+":5: scale_max: must be a positive number")
}
