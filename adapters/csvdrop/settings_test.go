package csvdrop

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/source"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

const lmsFile = "/etc/cvbridge/lms/academy.yaml"

// testConn is a connection with the settings node of its LMS file.
type testConn struct {
	adapters.Connection
	node *yaml.Node
}

// build builds c's source through the registry, as the core does.
func build(c testConn) (source.Source, error) {
	b, err := adapters.Build("csvdrop", c.Connection, c.node)
	return b.Source, err
}

// newTestFolder builds a Folder for c that reads the time from clk.
func newTestFolder(t testing.TB, c testConn, clk clock.Clock) *Folder {
	t.Helper()
	s, err := adapters.Decode("csvdrop", c.Connection, c.node)
	require.NoError(t, err)
	return newFolder(c.Connection, *s.(*Settings), clk)
}

// connection builds a Connection from the settings part of an LMS file; the
// settings start on line 3 of that file.
func connection(t testing.TB, baseDir, settings string) testConn {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("name: academy\nkind: csvdrop\nsettings:\n"+settings), &doc))
	root := doc.Content[0]
	var node *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "settings" {
			node = root.Content[i+1]
		}
	}
	if node != nil && node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		node = nil
	}
	return testConn{adapters.Connection{
		Name: "academy", File: lmsFile, BaseDir: baseDir,
		Location: amsterdam(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, node}
}

const minimalSettings = `  folder: drop
  columns:
    person: Deelnemer
    elearningcode: Code
    passed: Geslaagd
`

func TestNewRegisteredAndDefaults(t *testing.T) {
	t.Parallel()
	require.True(t, adapters.Known("csvdrop"), "csvdrop registers itself")

	src, err := build(connection(t, "/srv/lms", minimalSettings))
	require.NoError(t, err)
	f, ok := src.(*Folder)
	require.True(t, ok)
	assert.Equal(t, "/srv/lms/drop", f.folder)
	assert.Equal(t, "/srv/lms/drop/processed", f.processed.path)
	assert.Equal(t, "/srv/lms/drop/failed", f.failed.path)
	assert.Equal(t, rune(0), f.delim)
	want := DefaultSettings()
	want.Folder = "drop"
	want.Columns = Columns{Person: "Deelnemer", ElearningCode: "Code", Passed: "Geslaagd"}
	assert.Equal(t, want, f.settings)
}

func TestNewSettingsApplied(t *testing.T) {
	t.Parallel()
	src, err := build(connection(t, "/srv/lms", `  folder: /data/drop
  processed_dir: done
  failed_dir: /data/bad
  pattern: "resultaten_*.txt"
  settle: 2s
  delimiter: tab
  encoding: Windows-1252
  date_formats: ["02-01-2006"]
  passed_values: [ok, true, 1]
  failed_values: [nok]
  elearningcode_default: E-1
  columns:
    person: Deelnemer
    passed: Geslaagd
    result: Score
`))
	require.NoError(t, err)
	f := src.(*Folder)
	assert.Equal(t, "/data/drop", f.folder)
	assert.Equal(t, "/srv/lms/done", f.processed.path)
	assert.Equal(t, "/data/bad", f.failed.path)
	assert.Equal(t, '\t', f.delim)
	assert.Equal(t, encWindows1252, f.settings.Encoding)
	assert.Equal(t, 2*time.Second, f.settings.Settle)
	assert.Equal(t, []string{"02-01-2006"}, f.settings.DateFormats)
	assert.Equal(t, []string{"ok", "true", "1"}, f.settings.PassedValues, "yaml booleans and numbers are read as text")
	assert.Equal(t, []string{"nok"}, f.settings.FailedValues)
	assert.True(t, f.candidate("RESULTATEN_maart.TXT"))
	assert.False(t, f.candidate("export.csv"))
}

func TestNewSettingsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings string
		want     string
	}{
		{
			name:     "no settings at all",
			settings: "",
			want:     lmsFile + ": folder: required",
		},
		{
			name:     "unknown key",
			settings: minimalSettings + "  delimeter: ;\n",
			want:     lmsFile + `:9: delimeter: unknown key (did you mean "delimiter"?)`,
		},
		{
			name:     "unknown column key",
			settings: minimalSettings + "    score: Cijfer\n",
			want:     lmsFile + ":9: columns.score: unknown key",
		},
		{
			name:     "missing folder",
			settings: "  columns:\n    person: Deelnemer\n",
			want:     lmsFile + ":4: folder: required",
		},
		{
			name:     "grade bound not a number",
			settings: minimalSettings + "  plausible:\n    grade_min: laag\n",
			want:     lmsFile + `:10: plausible.grade_min: must be a number such as 0 or 10, got "laag"`,
		},
		{
			name:     "grade bounds crossed",
			settings: minimalSettings + "  plausible:\n    grade_min: 10\n    grade_max: 1\n",
			want:     lmsFile + ":11: plausible.grade_max: 1 is below grade_min 10",
		},
		{
			name:     "earliest date not a date",
			settings: minimalSettings + "  plausible:\n    earliest_date: 1-1-2000\n",
			want:     lmsFile + `:10: plausible.earliest_date: must be a date as YYYY-MM-DD, got "1-1-2000"`,
		},
		{
			name:     "thousands separator",
			settings: minimalSettings + "  thousands_separator: \" \"\n",
			want:     lmsFile + `:9: thousands_separator: must be ".", "," or empty (none), got " "`,
		},
		{
			name:     "required column made optional",
			settings: minimalSettings + "  optional_columns: [remark, person]\n",
			want:     lmsFile + ":9: optional_columns: person cannot be optional: no result can be sent without it",
		},
		{
			name:     "unknown optional column",
			settings: minimalSettings + "  optional_columns: [opmerking]\n",
			want:     lmsFile + `:9: optional_columns: "opmerking" is not a columns key; use one of person, elearningcode, completed_at, passed, result, result_decimal, remark, result_date, result_remark, attendance, attendance_date, attendance_remark`,
		},
		{
			name:     "bad delimiter",
			settings: minimalSettings + "  delimiter: \"|\"\n",
			want:     lmsFile + `:9: delimiter: must be auto, ";", "," or tab, got "|"`,
		},
		{
			name:     "bad encoding",
			settings: minimalSettings + "  encoding: latin1\n",
			want:     lmsFile + `:9: encoding: must be auto, utf-8 or windows-1252, got "latin1"`,
		},
		{
			name:     "settle not a duration",
			settings: minimalSettings + "  settle: 500\n",
			want:     lmsFile + `:9: settle: "500" is not a duration: it needs a unit`,
		},
		{
			name:     "negative settle",
			settings: minimalSettings + "  settle: -1s\n",
			want:     lmsFile + ":9: settle: must not be negative",
		},
		{
			name:     "bad pattern",
			settings: minimalSettings + "  pattern: \"[\"\n",
			want:     lmsFile + `:9: pattern: bad glob "["`,
		},
		{
			name:     "pattern with a directory",
			settings: minimalSettings + "  pattern: sub/*.csv\n",
			want:     lmsFile + ":9: pattern: must be a glob on the file name",
		},
		{
			name:     "layout without year",
			settings: minimalSettings + "  date_formats: [\"02-01\"]\n",
			want:     lmsFile + `:9: date_formats: layout 1 ("02-01") has no four-digit year`,
		},
		{
			name:     "no date formats",
			settings: minimalSettings + "  date_formats: []\n",
			want:     lmsFile + ":9: date_formats: must list at least one",
		},
		{
			name:     "value both passed and failed",
			settings: minimalSettings + "  failed_values: [nee, JA]\n",
			want:     lmsFile + `:9: failed_values: "JA" is also one of passed_values`,
		},
		{
			name:     "empty passed value",
			settings: minimalSettings + "  passed_values: [ja, \" \"]\n",
			want:     lmsFile + ":9: passed_values: values must not be empty",
		},
		{
			name:     "missing person column",
			settings: "  folder: drop\n  columns:\n    passed: Geslaagd\n",
			want:     lmsFile + ":5: columns.person: required",
		},
		{
			name:     "missing passed column",
			settings: "  folder: drop\n  columns:\n    person: Deelnemer\n",
			want:     lmsFile + ":5: columns.passed: required",
		},
		{
			name:     "missing code column without default",
			settings: "  folder: drop\n  columns:\n    person: Deelnemer\n    passed: Geslaagd\n",
			want:     lmsFile + ":5: columns.elearningcode: required unless elearningcode_default",
		},
		{
			name:     "result and result_decimal",
			settings: minimalSettings + "    result: Score\n    result_decimal: Cijfer\n",
			want:     lmsFile + ":10: columns.result_decimal: set at most one",
		},
		{
			name:     "attendance date without attendance",
			settings: minimalSettings + "    attendance_date: Datum\n",
			want:     lmsFile + ":9: columns.attendance_date: needs columns.attendance",
		},
		{
			name:     "attendance remark without attendance",
			settings: minimalSettings + "    attendance_remark: Opm\n",
			want:     lmsFile + ":9: columns.attendance_remark: needs columns.attendance",
		},
		{
			name:     "processed is the drop folder",
			settings: minimalSettings + "  processed_dir: drop/\n",
			want:     lmsFile + ":9: processed_dir: must differ from folder",
		},
		{
			name:     "failed is the drop folder",
			settings: minimalSettings + "  failed_dir: /srv/lms/drop\n",
			want:     lmsFile + ":9: failed_dir: must differ from folder",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := build(connection(t, "/srv/lms", tt.settings))
			var cerr *strictyaml.Error
			require.ErrorAs(t, err, &cerr)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestValidateReportsEveryMistake: three mistakes in one LMS file give
// three messages, each with its line and key, not only the first.
func TestValidateReportsEveryMistake(t *testing.T) {
	t.Parallel()
	_, err := build(connection(t, "/srv/lms", `  folder: drop
  pattern: "in/*.csv"
  thousands_separator: ";"
  columns:
    person: P
    passed: G
    elearningcode: C
    attendance_date: D
`))
	var list strictyaml.Errors
	require.ErrorAs(t, err, &list)
	assert.Equal(t, []string{
		lmsFile + `:5: pattern: must be a glob on the file name such as *.csv, got "in/*.csv"`,
		lmsFile + `:6: thousands_separator: must be ".", "," or empty (none), got ";"`,
		lmsFile + `:11: columns.attendance_date: needs columns.attendance: attendance date and remark belong to an attendance registration`,
	}, strings.Split(err.Error(), "\n"))
}
