package moodle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// newDBSourceAt is newDBSource with the given clock.
func newDBSourceAt(t testing.TB, driver, dir, extra string, clk clock.Clock) *Moodle {
	t.Helper()
	m, err := newTestMoodle(connection(t, dir, "  mode: database\n  driver: "+driver+"\n  dsn_file: moodle.dsn\n"+extra, nil), clk, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })
	return m
}

// countingSink counts the completions a poll hands over, new or unchanged:
// the rows the poll read and mapped.
type countingSink struct {
	*memSink
	staged int
}

func (s *countingSink) Commit(ctx context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	return s.memSink.Commit(ctx, cp, func(add func(result.Completion) error) error {
		return fill(func(c result.Completion) error {
			s.staged++
			return add(c)
		})
	})
}

// grow adds n users (ids from 1000, idnumber G<id>) and a completion of
// course 5 (E-INTRO) for each, one second apart from T0+1000, with a quiz
// grade, its history row and two log rows each, in one statement each
// (generate_series, MariaDB's sequence engine).
func grow(t *testing.T, db *sqlx.DB, driver string, n int) {
	t.Helper()
	series := fmt.Sprintf("generate_series(1000, %d) AS s(seq)", 999+n)
	if driver == driverMySQL {
		series = fmt.Sprintf("seq_1000_to_%d", 999+n)
	}
	db.MustExec("INSERT INTO mdl_user (id, username, idnumber, mnethostid) SELECT seq, CONCAT('gen', seq), CONCAT('G', seq), 1 FROM " + series)
	db.MustExec(fmt.Sprintf("INSERT INTO mdl_course_completions (id, userid, course, timeenrolled, timecompleted) SELECT 100000 + seq, seq, 5, %d, %d + seq FROM %s", t0, t0, series))
	db.MustExec(fmt.Sprintf("INSERT INTO mdl_grade_grades (id, itemid, userid, rawgrade, finalgrade, timemodified) SELECT 100000 + seq, 21, seq, 5, 5, %d + seq FROM %s", t0, series))
	db.MustExec(fmt.Sprintf("INSERT INTO mdl_grade_grades_history (action, oldid, source, timemodified, itemid, userid, finalgrade) SELECT 1, seq, 'mod/quiz', %d + seq, 21, seq, 5 FROM %s", t0, series))
	for _, event := range []string{`\core\event\course_viewed`, eventCourseCompleted} {
		db.MustExec(db.Rebind(fmt.Sprintf(`INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, timecreated)
SELECT ?, 'core', 'x', 'course', 100000 + seq, 'r', 2, 1, 50, 5, seq, 5, %d + seq FROM %s`, t0, series)), event)
	}
	if driver == driverPostgres {
		db.MustExec("ANALYZE")
	} else {
		db.MustExec("ANALYZE TABLE mdl_user, mdl_course_completions")
	}
}

// rowsExamined runs query and returns how many rows the database read for
// it: on PostgreSQL the rows of mdl_course_completions its plan's scans
// returned or filtered out (EXPLAIN ANALYZE); on MariaDB the session's
// Handler_read counters over every table.
func rowsExamined(t *testing.T, db *sqlx.DB, driver, query string, args []any) int64 {
	t.Helper()
	ctx := context.Background()
	if driver == driverPostgres {
		var plan string
		require.NoError(t, db.QueryRowContext(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+query, args...).Scan(&plan))
		var doc []map[string]any
		require.NoError(t, json.Unmarshal([]byte(plan), &doc))
		var n float64
		var walk func(map[string]any)
		walk = func(node map[string]any) {
			if node["Relation Name"] == "mdl_course_completions" {
				loops, _ := node["Actual Loops"].(float64)
				for _, k := range []string{"Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck"} {
					v, _ := node[k].(float64)
					n += v * loops
				}
			}
			kids, _ := node["Plans"].([]any)
			for _, k := range kids {
				walk(k.(map[string]any))
			}
		}
		walk(doc[0]["Plan"].(map[string]any))
		return int64(n)
	}
	conn, err := db.Connx(ctx)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	reads := func() int64 {
		rows, err := conn.QueryContext(ctx, "SHOW SESSION STATUS LIKE 'Handler_read%'")
		require.NoError(t, err)
		defer func() { _ = rows.Close() }()
		var total int64
		for rows.Next() {
			var name string
			var v int64
			require.NoError(t, rows.Scan(&name, &v))
			total += v
		}
		return total
	}
	before := reads()
	rows, err := conn.QueryContext(ctx, query, args...)
	require.NoError(t, err)
	for rows.Next() {
	}
	require.NoError(t, rows.Close())
	return reads() - before
}

func TestDatabaseFirstPollStartsNow(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()
			clk := clock.NewFake(time.Unix(t0+1000, 0))
			m := newDBSourceAt(t, d.driver, dir, "", clk)

			// The fixture's history (T0+100 … T0+700) is older than the first poll.
			sink := newMemSink()
			require.NoError(t, m.Poll(ctx, sink))
			assert.Empty(t, sink.Queued(), "nothing old is queued")
			cur := cursorOf(t, sink)
			assert.Equal(t, int64(t0+1000), cur.Start, "the first poll's start is kept")
			assert.Equal(t, int64(t0+1000), cur.Time)

			// A completion after the start is sent; so is one cron writes
			// back-dated after it, with its log event; one dated before the
			// start is history.
			clk.Advance(time.Minute)
			db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 120, 11, 3, t0+1050)
			db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 121, 14, 5, t0+900)
			logCompleted(t, db, 121)
			require.NoError(t, m.Poll(ctx, sink))
			assert.Equal(t, []string{"P101 E-XL passed=true dec= text= date=2024-06-01T00:17:30Z remark="}, results(sink))

			// A since set later does not move an existing cursor back.
			later := newDBSourceAt(t, d.driver, dir, history, clk)
			require.NoError(t, later.Poll(ctx, sink))
			assert.Len(t, sink.Queued(), 1)

			// With since, a fresh cursor starts there.
			fresh := newMemSink()
			require.NoError(t, newDBSourceAt(t, d.driver, dir, "  since: 2024-06-01T00:08:00Z\n", clk).Poll(ctx, fresh))
			assert.Equal(t, []string{
				"P100 E-INTRO passed=true dec= text= date=2024-06-01T00:10:00Z remark=",
				"P101 E-XL passed=true dec= text= date=2024-06-01T00:17:30Z remark=",
				"P104 E-INTRO passed=true dec= text= date=2024-06-01T00:15:00Z remark=",
			}, results(fresh))
			assert.Equal(t, int64(t0+480), cursorOf(t, fresh).Start)
		})
	}
}

func TestDatabasePageQueryIsBoundedOnTheTimeIndex(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			grow(t, db, d.driver, 20000)
			ctx := context.Background()
			m := newDBSourceAt(t, d.driver, dir, "", clock.NewFake(time.Unix(t0+30000, 0)))

			// A page near the end of 20,000 completions reads about a page,
			// not the index from the oldest completion on.
			query, args := m.queries().page(t0+20500, 0, nil, 100)
			n := rowsExamined(t, db, d.driver, query, args)
			assert.Less(t, n, int64(5000), "rows read for a page of 100 at the end of the history")

			// check plans every poll query and finds nothing read whole.
			notes, err := m.Check(ctx)
			require.NoError(t, err)
			for _, n := range notes {
				assert.NotContains(t, n, "reads all of", n)
			}
		})
	}
}

func TestDatabaseCheckNamesAWholeTableScan(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			grow(t, db, d.driver, 5000)
			ctx := context.Background()
			if d.driver == driverPostgres {
				db.MustExec("DROP INDEX mdl_courcomp_tim_ix")
			} else {
				// Without the time index MariaDB reaches the completions
				// through the course index, a whole course at a time; without
				// that one too, through the whole table.
				db.MustExec("DROP INDEX mdl_courcomp_tim_ix ON mdl_course_completions")
				db.MustExec("DROP INDEX mdl_courcomp_cou_ix ON mdl_course_completions")
				db.MustExec("ANALYZE TABLE mdl_course_completions")
			}
			m := newDBSourceAt(t, d.driver, dir, "  since: 2024-06-01T00:10:00Z\n", clock.NewFake(time.Unix(t0+30000, 0)))
			notes, err := m.Check(ctx)
			require.NoError(t, err)
			all := strings.Join(notes, "\n")
			assert.Contains(t, all, "the query reading new completions reads all of mdl_course_completions")
			// T0+600 … T0+5999 with since T0+600: 5,000 generated and Anna's Intro.
			assert.Contains(t, all, "since 2024-06-01T02:10:00+02:00 would queue 5,001 completions on a first poll")
		})
	}
}

func TestDatabaseChangesWithoutRereadingTheWindow(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			grow(t, db, d.driver, 20000)
			ctx := context.Background()
			m := newDBSourceAt(t, d.driver, dir, history+"  result: decimal\n", clock.NewFake(time.Unix(t0+30000, 0)))
			sink := &countingSink{memSink: newMemSink()}
			require.NoError(t, m.Poll(ctx, sink))
			require.Len(t, sink.Queued(), 20005, "the fixture's five and the 20,000 generated")
			newest := cursorOf(t, sink.memSink).Time
			require.Equal(t, int64(t0+20999), newest)

			// Nothing changed: the 20,000 completions inside the 72h window
			// are not read again.
			sink.staged = 0
			require.NoError(t, m.Poll(ctx, sink))
			assert.Equal(t, 0, sink.staged, "rows read with nothing changed")

			// Cron writes Bram's Excel completion back-dated an hour behind
			// the cursor, and the teacher regrades Anna's VCA course total.
			db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 130, 11, 3, newest-3600)
			logCompleted(t, db, 130)
			db.MustExec(`UPDATE mdl_grade_grades SET finalgrade = 80, timemodified = 1717300000 WHERE id = 200`)
			db.MustExec(`INSERT INTO mdl_grade_grades_history (action, oldid, source, timemodified, itemid, userid, rawgrademax, finalgrade)
				VALUES (2, 200, 'aggregation', 1717300000, 20, 10, 100, 80)`)
			// Moodle's other activity fills the log meanwhile.
			for i := 0; i < 50; i++ {
				db.MustExec(db.Rebind(`INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, crud, edulevel, contextid, contextlevel, contextinstanceid, userid, timecreated) VALUES (?, 'core', 'viewed', 'course', 'r', 2, 1, 50, 2, 10, ?)`),
					`\core\event\course_viewed`, t0+30000+i)
			}
			n := len(sink.Queued())
			sink.staged = 0
			require.NoError(t, m.Poll(ctx, sink))
			require.Len(t, sink.Queued(), n+2)
			got := []string{describe(sink.Queued()[n]), describe(sink.Queued()[n+1])}
			assert.ElementsMatch(t, []string{
				"P100 E-VCA passed=true dec=8 text= date=2024-06-01T00:01:40Z remark=",
				"P101 E-XL passed=true dec= text= date=2024-06-01T04:49:59Z remark=",
			}, got)
			assert.Equal(t, 2, sink.staged, "only the two changed completions are read")

			// A regrade of a completion older than lookback behind the cursor is not sent again.
			db.MustExec(`UPDATE mdl_grade_grades SET finalgrade = 10 WHERE id = 201`)
			db.MustExec(`INSERT INTO mdl_grade_grades_history (action, oldid, source, timemodified, itemid, userid, rawgrademax, finalgrade)
				VALUES (2, 201, 'aggregation', 1717300000, 20, 11, 100, 10)`)
			short := newDBSourceAt(t, d.driver, dir, history+"  result: decimal\n  lookback: 1h\n", clock.NewFake(time.Unix(t0+30000, 0)))
			n = len(sink.Queued())
			require.NoError(t, short.Poll(ctx, sink))
			assert.Len(t, sink.Queued(), n, "Bram's VCA regrade is older than the lookback")
		})
	}
}

func TestDatabaseWindowModeRereadsTheWindow(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()
			// changes: window needs neither the log nor the grade history.
			db.MustExec("DROP TABLE mdl_logstore_standard_log")
			db.MustExec("DROP TABLE mdl_grade_grades_history")
			m := newDBSourceAt(t, d.driver, dir, history+"  changes: window\n  lookback: 1h\n", clock.NewFake(time.Unix(t0+1000, 0)))
			sink := &countingSink{memSink: newMemSink()}
			require.NoError(t, m.Poll(ctx, sink))
			require.Len(t, sink.Queued(), 5)
			_, err := m.Check(ctx)
			require.NoError(t, err)

			// A back-dated completion without a log event is found by reading the window again.
			db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 110, 11, 3, t0+50)
			sink.staged = 0
			require.NoError(t, m.Poll(ctx, sink))
			require.Len(t, sink.Queued(), 6)
			assert.Equal(t, "P101 E-XL passed=true dec= text= date=2024-06-01T00:00:50Z remark=", describe(sink.Queued()[5]))
			assert.Equal(t, 6, sink.staged, "the window is read again")
		})
	}
}
