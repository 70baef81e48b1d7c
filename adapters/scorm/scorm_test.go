package scorm

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// results maps "person|code" to the current completion of every pair sink holds.
func results(sink *kittest.Sink) map[string]result.Completion {
	out := map[string]result.Completion{}
	for _, c := range sink.Latest() {
		out[c.PersonID+"|"+c.ElearningCode] = c
	}
	return out
}

// summary renders sink's results as "person|code passed result" lines, sorted.
func summary(sink *kittest.Sink) []string {
	var out []string
	for k, c := range results(sink) {
		if c.Unreadable != "" {
			out = append(out, k+" unreadable")
			continue
		}
		r := c.ResultDecimal
		if c.ResultText != "" {
			r = "text:" + c.ResultText
		}
		out = append(out, fmt.Sprintf("%s %t %s", k, c.Passed, r))
	}
	sort.Strings(out)
	return out
}

// base is the fixtures' time origin; fixture rows are minutes after it.
const base = 1740000000

// database creates a test database on driver's server and loads fixtures.
func database(t *testing.T, driver string, fixtures ...string) (dsn string, db *sql.DB) {
	t.Helper()
	if driver == "postgres" {
		dsn = testdb.Postgres(t)
	} else {
		dsn = testdb.MySQL(t)
	}
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	for _, f := range fixtures {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "scorm", f))
		require.NoError(t, err)
		_, err = db.Exec(string(b))
		require.NoError(t, err, "load %s", f)
	}
	return dsn, db
}

// newTestSource builds a source for settings (YAML without driver and
// dsn_file) with a fake clock one day after the fixtures and a log buffer,
// for a provider in UTC.
func newTestSource(t *testing.T, driver, dsn, settings string) (source.Source, *bytes.Buffer) {
	t.Helper()
	return newTestSourceIn(t, driver, dsn, settings, time.UTC)
}

// newTestSourceIn is newTestSource for a provider in the time zone loc.
func newTestSourceIn(t *testing.T, driver, dsn, settings string, loc *time.Location) (source.Source, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dsn"), []byte(dsn+"\n"), 0o600))
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("driver: "+driver+"\ndsn_file: dsn\n"+settings), &node))
	logs := &bytes.Buffer{}
	c := adapters.Connection{
		Name: "test", File: filepath.Join(dir, "lms.yaml"), BaseDir: dir,
		Location: loc, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	s, err := adapters.Decode("scorm", c, &node)
	require.NoError(t, err)
	src, err := newSource(c, s.(*Settings), clock.NewFake(time.Unix(base+86400, 0)))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, src.Close()) })
	if src.cfg.enrol != nil {
		return &EnrollingSource{src}, logs
	}
	return src, logs
}

var drivers = []string{"postgres", "mysql"}

func TestMoodlePreset(t *testing.T) {
	t.Parallel()
	// The pass of P003's second SCO is written after the first poll, with
	// a time before the cursor: the lookback must find it.
	late := map[string]string{
		"moodle_track.sql": `UPDATE mdl_scorm_scoes_track SET value = 'completed', timemodified = 1740000960
			WHERE userid = 3 AND scoid = 202 AND element = 'cmi.completion_status';
			UPDATE mdl_scorm_scoes_track SET value = 'passed', timemodified = 1740000960
			WHERE userid = 3 AND scoid = 202 AND element = 'cmi.success_status'`,
		"moodle_attempt.sql": `UPDATE mdl_scorm_scoes_value SET value = 'completed', timemodified = 1740000960
			WHERE attemptid = 4 AND scoid = 202 AND elementid = 3;
			UPDATE mdl_scorm_scoes_value SET value = 'passed', timemodified = 1740000960
			WHERE attemptid = 4 AND scoid = 202 AND elementid = 4`,
	}
	first := []string{
		"P001|E-12 true 85",    // SCORM 1.2 pass
		"P002|E-12 true 72",    // retake after a failure: the first pass counts
		"P004|E-2004 true 70",  // SCORM 2004, two SCOs: mean of 0.8 and 0.6
		"P005|E-12 unreadable", // score.raw "8O": recorded as rejected, with the reason
		"P006|E-12 true 75",    // "7,5" of 10
	}
	for _, driver := range drivers {
		for _, schemaFile := range []string{"moodle_track.sql", "moodle_attempt.sql"} {
			for _, pageSize := range []int{500, 2} {
				t.Run(fmt.Sprintf("%s/%s/page_%d", driver, schemaFile, pageSize), func(t *testing.T) {
					t.Parallel()
					dsn, db := database(t, driver, "moodle_common.sql", schemaFile)
					src, logs := newTestSource(t, driver, dsn, fmt.Sprintf("page_size: %d\n", pageSize))
					sink := kittest.NewSink()
					ctx := context.Background()

					require.NoError(t, src.Poll(ctx, sink))
					assert.Equal(t, first, summary(sink))
					assert.Contains(t, logs.String(), `person=P005`)
					assert.Contains(t, logs.String(), `score.raw = \"8O\"`)
					assert.Contains(t, logs.String(), "schema")
					assert.Contains(t, logs.String(), `level=WARN msg="no result for this pair" adapter=scorm source_ref="`+
						map[string]string{"moodle_track.sql": "mdl_scorm_scoes_track", "moodle_attempt.sql": "mdl_scorm_scoes_value"}[schemaFile]+
						` userid 7 scormid 1" reason="user has no idnumber`)
					assert.Contains(t, results(sink)["P005|E-12"].Unreadable, `score.raw = "8O"`)
					c := results(sink)["P002|E-12"]
					assert.Equal(t, time.Unix(base+800, 0).UTC(), c.CompletedAt)
					assert.Contains(t, c.SourceRef, "attempt 2")
					if pageSize == 2 {
						assert.Greater(t, sink.Commits(), 4, "pages of two pairs")
					}

					adds := sink.Count()
					require.NoError(t, src.Poll(ctx, sink))
					assert.Equal(t, first, summary(sink), "a second poll changes nothing")
					assert.Equal(t, 2*adds, sink.Count(), "the lookback reads the window again; the core drops identical bodies")

					_, err := db.Exec(late[schemaFile])
					require.NoError(t, err)
					require.NoError(t, src.Poll(ctx, sink))
					assert.Equal(t, append(first[:2:2], append([]string{"P003|E-2004 true 90"}, first[2:]...)...), summary(sink))
				})
			}
		}
	}
}

func TestMoodlePresetSettingsVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings string
		want     []string
	}{
		{
			name:     "last attempt, text result on a 10 scale, codes by scorm id, username",
			settings: "attempt: last\nresult: text\nscale_max: \"10\"\ntext_format: \"{score} / 10\"\nperson_field: username\ncodes: {\"scorm:3\": X-3}\n",
			want: []string{"u1|E-12 true text:8.5 / 10", "u1|X-3 true text:10 / 10", "u2|E-12 true text:7.2 / 10",
				"u4|E-2004 true text:7 / 10", "u5|E-12 unreadable", "u6|E-12 true text:7.5 / 10", "u7|E-12 true text:9 / 10"},
		},
		{
			name:     "threshold 80 with failures held back",
			settings: "passed: threshold\nthreshold: \"80\"\nsend_failed: false\n",
			want:     []string{"P001|E-12 true 85", "P005|E-12 unreadable"},
		},
		{
			name:     "threshold 80 sending failures",
			settings: "passed: threshold\nthreshold: \"80\"\n",
			want:     []string{"P001|E-12 true 85", "P002|E-12 false 72", "P004|E-2004 false 70", "P005|E-12 unreadable", "P006|E-12 false 75"},
		},
		{
			name:     "only the named intro SCO counts, without result",
			settings: "sco_rule: named\nsco_identifier: sco_intro\nresult: none\n",
			want:     []string{"P003|E-2004 true ", "P004|E-2004 true "},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn, _ := database(t, "postgres", "moodle_common.sql", "moodle_track.sql")
			src, _ := newTestSource(t, "postgres", dsn, tc.settings)
			sink := kittest.NewSink()
			require.NoError(t, src.Poll(context.Background(), sink))
			assert.Equal(t, tc.want, summary(sink))
		})
	}
}

// customQuery is the custom fixture's query; :cursor_time is Unix seconds.
const customQuery = `query: |
  SELECT learner AS person_id, course_code AS elearning_code, attempt_no AS attempt_key, sco AS sco_key,
         status AS lesson_status, completion AS completion_status, success AS success_status,
         raw_score AS score_raw, '' AS score_min, max_score AS score_max, scaled AS score_scaled,
         updated AS modified
  FROM tracking WHERE updated >= :cursor_time -- rows changed since the cursor
`

func TestCustomPreset(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dsn, db := database(t, driver, "custom.sql")
			src, logs := newTestSource(t, driver, dsn, "preset: custom\npage_size: 2\n"+customQuery)
			sink := kittest.NewSink()
			ctx := context.Background()
			require.NoError(t, src.Poll(ctx, sink))
			want := []string{"C001|CUST-1 true 66", "C002|CUST-1 true 75", "C004|CUST-1 unreadable", "C005|CUST-1 true 65"}
			assert.Equal(t, want, summary(sink))
			assert.Contains(t, logs.String(), `person=C004`)
			assert.Contains(t, logs.String(), `cmi.core.lesson_status = \"done\"`)

			// part_b finishes late with an old time; the malformed row is
			// corrected. (Rewritten rather than updated: on PostgreSQL an
			// update leaves a HOT chain, and an index created later on such a
			// table is usable only by transactions that began after every
			// transaction older than it ended, which other tests on the same
			// server may delay past the check below.)
			for _, stmt := range []string{
				`DELETE FROM tracking WHERE id IN (5, 6)`,
				`INSERT INTO tracking (id, learner, course_code, attempt_no, sco, status, completion, success, raw_score, max_score, scaled, updated) VALUES
					(5, 'C003', 'CUST-2', 1, 'part_b', '', 'completed', 'passed', '', '', '0.5', 1740000550),
					(6, 'C004', 'CUST-1', 1, 'main', 'failed', '', '', '50', '100', '', 1740000650)`,
			} {
				_, err := db.Exec(stmt)
				require.NoError(t, err)
			}
			require.NoError(t, src.Poll(ctx, sink))
			assert.Equal(t, []string{"C001|CUST-1 true 66", "C002|CUST-1 true 75", "C003|CUST-2 true 75", "C004|CUST-1 false 50", "C005|CUST-1 true 65"}, summary(sink))

			notes, err := src.(source.Checker).Check(ctx)
			require.NoError(t, err)
			require.Len(t, notes, 1)
			assert.Contains(t, notes[0], "tracking")
			assert.Contains(t, notes[0], "(updated)")

			// A table of a few rows is cheap to read in any order, and the
			// planner may then prefer a whole index that gives the query's
			// order. Old history rows make the range on updated the clear
			// choice, as on a real player's table; with 2,000 of them the
			// planner still chose a whole-table read about once in 30 runs.
			var filler strings.Builder
			filler.WriteString(`INSERT INTO tracking (id, learner, course_code, attempt_no, sco, updated) VALUES `)
			for i := range 20000 {
				if i > 0 {
					filler.WriteString(", ")
				}
				fmt.Fprintf(&filler, "(%d, 'H%05d', 'CUST-9', 1, 'main', %d)", 1000+i, i, 1600000000+i)
			}
			_, err = db.Exec(filler.String())
			require.NoError(t, err)
			_, err = db.Exec(`CREATE INDEX tracking_updated_ix ON tracking (updated)`)
			require.NoError(t, err)
			// Plans follow statistics; autovacuum gathers them at a time of its
			// own, so gather them now for a plan that does not depend on it.
			analyze := `ANALYZE tracking`
			if driver == "mysql" {
				analyze = `ANALYZE TABLE tracking`
			}
			_, err = db.Exec(analyze)
			require.NoError(t, err)
			notes, err = src.(source.Checker).Check(ctx)
			require.NoError(t, err)
			assert.Empty(t, notes, "with an index on updated nothing is scanned whole")
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver+"/moodle", func(t *testing.T) {
			t.Parallel()
			dsn, db := database(t, driver, "moodle_common.sql", "moodle_attempt.sql")
			src, _ := newTestSource(t, driver, dsn, "")
			notes, err := src.(source.Checker).Check(context.Background())
			require.NoError(t, err)
			require.Len(t, notes, 2, "%q", notes)
			assert.Contains(t, notes[0], "scorm_attempt (Moodle 4.3 and later)")
			assert.Contains(t, notes[1], "mdl_scorm_scoes_value (timemodified)")
			_, err = db.Exec("CREATE INDEX mdl_scorscoeval_tim_ix ON mdl_scorm_scoes_value (timemodified)")
			require.NoError(t, err)
			notes, err = src.(source.Checker).Check(context.Background())
			require.NoError(t, err)
			assert.Len(t, notes, 1, "%q", notes)
		})
		t.Run(driver+"/custom missing column", func(t *testing.T) {
			t.Parallel()
			dsn, _ := database(t, driver, "custom.sql")
			src, _ := newTestSource(t, driver, dsn, "preset: custom\nquery: SELECT learner AS person_id, updated AS modified FROM tracking WHERE updated >= :cursor_time\n")
			_, err := src.(source.Checker).Check(context.Background())
			require.ErrorContains(t, err, "lacks column(s) elearning_code, attempt_key")
		})
		t.Run(driver+"/no moodle tables", func(t *testing.T) {
			t.Parallel()
			dsn, _ := database(t, driver)
			src, _ := newTestSource(t, driver, dsn, "prefix: m_\n")
			_, err := src.(source.Checker).Check(context.Background())
			require.ErrorContains(t, err, "neither m_scorm_attempt nor m_scorm_scoes_track exists")
			assert.True(t, source.IsPermanent(err))
		})
	}
}

func TestEnroller(t *testing.T) {
	t.Parallel()
	const schema = `CREATE TABLE enrolments (person_id VARCHAR(50) NOT NULL, code VARCHAR(50) NOT NULL,
		name VARCHAR(200) NOT NULL, email VARCHAR(200) NOT NULL)`
	const settings = `preset: custom
` + customQuery + `enrol_sql: >
  INSERT INTO enrolments (person_id, code, name, email)
  SELECT :person_id, :elearning_code, :last_name, :email FROM tracking
  WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM enrolments WHERE person_id = :person_id AND code = :elearning_code)
unenrol_sql: "DELETE FROM enrolments WHERE person_id = :person_id AND code = :elearning_code"
`
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dsn, db := database(t, driver, "custom.sql")
			_, err := db.Exec(schema)
			require.NoError(t, err)
			src, _ := newTestSource(t, driver, dsn, settings)
			en, ok := src.(source.Enroller)
			require.True(t, ok)
			ctx := context.Background()
			e := source.Enrolment{PersonID: "p1", FirstName: "Jan", LastName: "Jansen", Email: "jan@example.org", ElearningCode: "E1"}
			require.NoError(t, en.Enrol(ctx, e))
			require.NoError(t, en.Enrol(ctx, e), "repeating is harmless")
			require.NoError(t, en.Enrol(ctx, source.Enrolment{PersonID: "p2", ElearningCode: "E1", LastName: "Smit"}))
			count := func() (n int) {
				require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM enrolments").Scan(&n))
				return n
			}
			assert.Equal(t, 2, count())
			require.NoError(t, en.Unenrol(ctx, "p1", "E1"))
			require.NoError(t, en.Unenrol(ctx, "p1", "E1"), "not enrolled is no error")
			assert.Equal(t, 1, count())
			notes, err := src.(source.Checker).Check(ctx)
			require.NoError(t, err)
			assert.Len(t, notes, 1)
		})
	}
	t.Run("without enrol_sql the source cannot enrol", func(t *testing.T) {
		t.Parallel()
		src, _ := newTestSource(t, "postgres", "postgres://nowhere/x", "")
		_, ok := src.(source.Enroller)
		assert.False(t, ok)
	})
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dsn, db := database(t, driver, "custom.sql")
			src, _ := newTestSource(t, driver, dsn, "preset: custom\nquery: |\n  SELECT learner AS person_id, course_code AS elearning_code, 1 AS attempt_key, 'x' AS sco_key, 'passed' AS lesson_status, '' AS completion_status, '' AS success_status, '' AS score_raw, '' AS score_min, '' AS score_max, '' AS score_scaled, updated AS modified FROM tracking WHERE updated >= :cursor_time AND id NOT IN (SELECT id FROM tracking FOR UPDATE)\n")
			err := src.Poll(context.Background(), kittest.NewSink())
			require.Error(t, err, "a query taking row locks fails in a read-only transaction")
			var n int
			require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM tracking").Scan(&n))
			assert.Equal(t, 7, n)
			assert.True(t, strings.Contains(strings.ToLower(err.Error()), "read"), err.Error())
		})
	}
}
