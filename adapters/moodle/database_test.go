package moodle

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// t0 is the fixture's time origin (2024-06-01 00:00 UTC).
const t0 = 1717200000

// history is the since setting that reads the whole fixture, which starts
// at T0: without since a first poll starts at its own time.
const history = "  since: 2024-06-01T00:00:00Z\n"

// cursorOf decodes the committed database-mode cursor.
func cursorOf(t *testing.T, sink *memSink) dbCursor {
	t.Helper()
	var cur dbCursor
	require.NoError(t, json.Unmarshal(sink.LastCursor(), &cur))
	return cur
}

// logCompleted writes the course_completed event Moodle logs when it marks
// a course complete (completion_completion::mark_complete), as
// logstore_standard does.
func logCompleted(t *testing.T, db *sqlx.DB, completionID int64) {
	t.Helper()
	db.MustExec(db.Rebind(`INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, relateduserid, timecreated)
SELECT ?, 'core', 'completed', 'course', 'course_completions', id, 'u', 2, 1, 50, course, userid, course, userid, ? FROM mdl_course_completions WHERE id = ?`),
		eventCourseCompleted, time.Now().Unix(), completionID)
}

// dialects are the database servers database mode is tested against.
var dialects = []struct {
	name, driver string
	dsn          func(testing.TB) string
}{
	{"postgres", driverPostgres, testdb.Postgres},
	{"mariadb", driverMySQL, testdb.MySQL},
}

// moodleDB creates Moodle's tables and the fixture in a fresh database and
// returns a direct handle and a DSN file for the adapter.
func moodleDB(t *testing.T, driver string, dsn string) (*sqlx.DB, string) {
	t.Helper()
	db, err := sqlx.Open(driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	for _, f := range []string{"schema_" + driver + ".sql", "fixture.sql"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "moodle", f))
		require.NoError(t, err)
		_, err = db.Exec(string(b))
		require.NoError(t, err, f)
	}
	if driver == driverPostgres {
		// What autovacuum does on a real Moodle: the planner knows the sizes.
		db.MustExec("ANALYZE")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.dsn"), []byte(dsn+"\n"), 0o600))
	return db, dir
}

func newDBSource(t *testing.T, driver, dir, extra string, logs *bytes.Buffer) *Moodle {
	t.Helper()
	m, err := newTestMoodle(connection(t, dir, "  mode: database\n  driver: "+driver+"\n  dsn_file: moodle.dsn\n"+extra, logs), clock.System{}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })
	return m
}

func TestDatabaseMode(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()

			t.Run("gradepass with decimal result", func(t *testing.T) {
				logs := &bytes.Buffer{}
				m := newDBSource(t, d.driver, dir, history+"  passed: gradepass\n  result: decimal\n  page_size: 2\n  remark: \"{{.ShortName}} {{.Grade}}/{{.Max}}\"\n", logs)
				sink := newMemSink()
				require.NoError(t, m.Poll(ctx, sink))
				assert.Equal(t, []string{
					// 66.66667/100 × 10 exactly; the core rounds it to 6.67.
					"P100 E-VCA passed=true dec=6.666667 text= date=2024-06-01T00:01:40Z remark=vca 66.66667/100",
					"P101 E-VCA passed=false dec=4 text= date=2024-06-01T00:03:20Z remark=vca 40/100",
				}, results(sink))
				// Carla has no idnumber; Eva is ungraded in a course with a pass mark; Excel has
				// no pass mark; Ethiek has no idnumber; Intro has no grade item at all.
				out := logs.String()
				assert.Contains(t, out, "user_id=12")
				assert.Contains(t, out, "course_id=3")
				assert.Contains(t, out, "course_id=4")
				assert.Contains(t, out, "course_id=5")
				assert.NotContains(t, out, "Carla")
				assert.NotContains(t, out, "user_id=13", "a deleted user is not read")
				cur := cursorOf(t, sink)
				// The cursor passes the deleted user's completion (108): read, never sent.
				assert.Equal(t, [3]any{int64(1717200700), int64(108), []int64{103, 104, 105, 106, 107}}, [3]any{cur.Time, cur.ID, cur.Retry})
				assert.Greater(t, sink.Commits(), 3, "one commit per page of 2")
			})

			t.Run("completion with text result, back-dating and retry", func(t *testing.T) {
				logs := &bytes.Buffer{}
				m := newDBSource(t, d.driver, dir, history+"  result: text\n  lookback: 1h\n", logs)
				sink := newMemSink()
				require.NoError(t, m.Poll(ctx, sink))
				assert.Equal(t, []string{
					"P100 E-INTRO passed=true dec= text= date=2024-06-01T00:10:00Z remark=",
					"P100 E-VCA passed=true dec= text=67% date=2024-06-01T00:01:40Z remark=",
					// Excel's course total is calculated: its maximum is the item's 10, not rawgrademax 100.
					"P100 E-XL passed=true dec= text=75% date=2024-06-01T00:06:40Z remark=",
					"P101 E-VCA passed=true dec= text=40% date=2024-06-01T00:03:20Z remark=",
					"P104 E-VCA passed=true dec= text= date=2024-06-01T00:05:00Z remark=",
				}, results(sink))
				assert.Contains(t, logs.String(), "user_id=12")
				assert.Contains(t, logs.String(), "course_id=4")

				// Cron writes Bram's Excel completion back-dated, after the cursor passed its time,
				// and logs it.
				db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 110, 11, 3, t0+50)
				logCompleted(t, db, 110)
				db.MustExec(db.Rebind(`INSERT INTO mdl_grade_grades (id, itemid, userid, rawgrademax, finalgrade) VALUES (?, ?, ?, ?, ?)`), 206, 30, 11, "100.00000", "5.55500")
				n, before := len(sink.Queued()), sink.LastCursor()
				require.NoError(t, m.Poll(ctx, sink))
				require.Len(t, sink.Queued(), n+1, "only the back-dated completion is new")
				assert.Equal(t, "P101 E-XL passed=true dec= text=56% date=2024-06-01T00:00:50Z remark=", describe(sink.Queued()[n]))
				// Without the lookback window the same poll misses it.
				noLookback := newDBSource(t, d.driver, dir, history+"  result: text\n  lookback: 0s\n", nil)
				bare := newMemSink()
				bare.SetCursor(before)
				require.NoError(t, noLookback.Poll(ctx, bare))
				assert.NotContains(t, results(bare), describe(sink.Queued()[n]))

				// A week later: Carla's and Ethiek's completions are far behind the window.
				db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 111, 14, 3, t0+7*86400)
				logs.Reset()
				require.NoError(t, m.Poll(ctx, sink))
				assert.Contains(t, logs.String(), "user_id=12", "still reported while unfixed")

				// The operator fills in Carla's idnumber and Ethiek's course idnumber.
				db.MustExec(`UPDATE mdl_user SET idnumber = 'P102' WHERE id = 12`)
				db.MustExec(`UPDATE mdl_course SET idnumber = 'E-ETH' WHERE id = 4`)
				logs.Reset()
				require.NoError(t, m.Poll(ctx, sink))
				assert.Contains(t, results(sink), "P102 E-VCA passed=true dec= text=90% date=2024-06-01T00:05:00Z remark=")
				assert.Contains(t, results(sink), "P104 E-ETH passed=true dec= text=80% date=2024-06-01T00:08:20Z remark=")
				assert.NotContains(t, logs.String(), "user_id=12")
				cur := cursorOf(t, sink)
				assert.Equal(t, [3]any{int64(1717804800), int64(111), []int64(nil)}, [3]any{cur.Time, cur.ID, cur.Retry})
			})

			t.Run("profile field as person id", func(t *testing.T) {
				m := newDBSource(t, d.driver, dir, history+"  person_field: profile:cvid\n  course_field: shortname\n", nil)
				sink := newMemSink()
				require.NoError(t, m.Poll(ctx, sink))
				assert.Contains(t, results(sink), "CV-100 vca passed=true dec= text= date=2024-06-01T00:01:40Z remark=")
				for _, r := range results(sink) {
					assert.NotContains(t, r, "P10", "idnumbers are not used")
				}
			})

			t.Run("check", func(t *testing.T) {
				m := newDBSource(t, d.driver, dir, "  person_field: profile:cvid\n", nil)
				notes, err := m.Check(ctx)
				require.NoError(t, err)
				assert.Contains(t, notes, "database: found the Moodle tables with prefix mdl_")
				assert.Contains(t, notes, "no since: the first poll starts at its own time and sends no completion dated before it")

				wrong := newDBSource(t, d.driver, dir, "  prefix: mo_\n", nil)
				_, err = wrong.Check(ctx)
				require.Error(t, err)
				assert.Contains(t, err.Error(), "mo_course_completions")
				assert.Contains(t, err.Error(), "$CFG->prefix")

				noField := newDBSource(t, d.driver, dir, "  person_field: profile:nope\n", nil)
				_, err = noField.Check(ctx)
				require.Error(t, err)
				assert.Contains(t, err.Error(), `"nope"`)
			})
		})
	}
}
