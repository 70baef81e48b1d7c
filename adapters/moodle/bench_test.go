package moodle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// benchRate is the completions per day of the generated history.
const benchRate = 200

// BenchmarkMoodleHistory measures database mode on PostgreSQL against a
// Moodle history that grows tenfold in the same run: CVBRIDGE_BENCH_MOODLE_ROWS
// completions (default 100,000), first a tenth of them, then all, the
// older nine tenths added behind the first at the same 200 a day (so the
// last 30 days hold the same completions at both sizes). Every completion
// has its course total, its grade-history row and its course_completed log
// event, in Moodle's real tables and indexes (testdata/moodle), generated
// with generate_series. At each size, from a cursor a first poll has just
// written: a poll with nothing changed, a poll after 1,000 new completions,
// and a first poll with since 30 days back; then the 1,000 new are
// removed again. Rows read are the database's own count (pg_stat:
// sequential plus index tuples read, all tables) for the poll. Each ratio,
// of time and of rows read, is the full history's over the tenth's.
func BenchmarkMoodleHistory(b *testing.B) {
	total := 100000
	if v := os.Getenv("CVBRIDGE_BENCH_MOODLE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		total = n
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dsn := testdb.Postgres(b)
		db, err := sqlx.Open("postgres", dsn)
		require.NoError(b, err)
		schema, err := os.ReadFile(filepath.Join("..", "..", "testdata", "moodle", "schema_postgres.sql"))
		require.NoError(b, err)
		db.MustExec(string(schema))
		dir := b.TempDir()
		require.NoError(b, os.WriteFile(filepath.Join(dir, "moodle.dsn"), []byte(dsn+"\n"), 0o600))
		const now = t0 + 10000*86400
		db.MustExec(`INSERT INTO mdl_course (id, fullname, shortname, idnumber, enablecompletion)
			SELECT c, 'Course ' || c, 'c' || c, 'E-' || c, 1 FROM generate_series(10, 15) c`)
		db.MustExec(`INSERT INTO mdl_grade_items (id, courseid, itemtype, iteminstance, grademax, gradepass)
			SELECT 100 + c, c, 'course', c, 100, 55 FROM generate_series(10, 15) c`)

		phases := []struct {
			name     string
			from, to int
			clock    int64
			course   int
		}{
			{"small", 0, total / 10, now + 5, 14},
			{"large", total / 10, total, now + 5000, 15},
		}
		metrics := map[string]float64{}
		for _, ph := range phases {
			start := time.Now()
			generate(b, db, ph.from, ph.to, now)
			b.Logf("%s: generated completions %d to %d in %s", ph.name, ph.from, ph.to, time.Since(start).Round(time.Millisecond))
			clk := clock.NewFake(time.Unix(ph.clock, 0))
			m := newDBSourceAt(b, driverPostgres, dir, "  page_size: 500\n", clk)
			sink := newMemSink()
			require.NoError(b, m.Poll(context.Background(), sink)) // the first poll: starts at now

			measure := func(what string, m *Moodle, sink *memSink, want int) {
				before := tuplesRead(b, db)
				b.StartTimer()
				t := time.Now()
				require.NoError(b, m.Poll(context.Background(), sink))
				el := time.Since(t)
				b.StopTimer()
				require.NoError(b, m.Close()) // its backend exits and reports its statistics
				metrics[what+"-ms-"+ph.name] = float64(el.Microseconds()) / 1000
				metrics[what+"-rows-"+ph.name] = float64(tuplesAfter(b, db, before))
				require.Equal(b, want, len(sink.Queued()), what)
			}
			measure("idle", m, sink, 0)

			db.MustExec(fmt.Sprintf(`INSERT INTO mdl_course_completions (id, userid, course, timeenrolled, timecompleted)
				SELECT 50000000 + %[1]d * 1000 + j, 1000 + j, %[1]d, %[2]d, %[2]d + 10 + j FROM generate_series(0, 999) j`, ph.course, ph.clock))
			db.MustExec(`INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, relateduserid, timecreated)
				SELECT $1, 'core', 'completed', 'course', 'course_completions', id, 'u', 2, 1, 50, course, userid, course, userid, timecompleted
				FROM mdl_course_completions WHERE id >= 50000000 AND course = $2`, eventCourseCompleted, ph.course)
			db.MustExec("ANALYZE mdl_course_completions")
			clk.Advance(2000 * time.Second)
			measure("new1000", m, sink, 1000)

			since := time.Unix(now-30*86400, 0).UTC().Format(time.RFC3339)
			fresh := newDBSourceAt(b, driverPostgres, dir, "  page_size: 500\n  since: "+since+"\n", clk)
			// Both ends of the 30 days, and the phase's 1,000 new.
			measure("since30d", fresh, newMemSink(), 30*benchRate+1+1000)
			// The next phase starts from the history alone: its last 30
			// days are the same, and so is what each poll should read.
			db.MustExec("DELETE FROM mdl_logstore_standard_log WHERE objectid >= 50000000")
			db.MustExec("DELETE FROM mdl_course_completions WHERE id >= 50000000")
		}
		names := make([]string, 0, len(metrics))
		for k := range metrics {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b.ReportMetric(metrics[k], k)
		}
		for _, what := range []string{"idle", "new1000", "since30d"} {
			b.ReportMetric(metrics[what+"-ms-large"]/metrics[what+"-ms-small"], what+"-ratio")
			b.ReportMetric(metrics[what+"-rows-large"]/max(metrics[what+"-rows-small"], 1), what+"-rows-ratio")
		}
		b.ReportMetric(float64(total), "completions")
		require.NoError(b, db.Close())
	}
}

// generate writes completions from up to to (exclusive), the k-th dated
// k/benchRate days before now, four courses (10…13) a user, with its course
// total, grade-history row and log event, and analyzes the tables.
func generate(b *testing.B, db *sqlx.DB, from, to int, now int64) {
	b.Helper()
	series := fmt.Sprintf("generate_series(%d::bigint, %d) AS s(k)", from, to-1)
	tc := fmt.Sprintf("%d - k * 86400 / %d", now, benchRate)
	for _, stmt := range []string{
		fmt.Sprintf(`INSERT INTO mdl_user (id, username, idnumber, mnethostid)
			SELECT 1000 + k / 4, 'u' || k / 4, 'P' || k / 4, 1 FROM %s WHERE k %% 4 = 0`, series),
		fmt.Sprintf(`INSERT INTO mdl_course_completions (id, userid, course, timeenrolled, timestarted, timecompleted)
			SELECT k + 1, 1000 + k / 4, 10 + k %% 4, %[2]s - 86400, %[2]s - 86400, %[2]s FROM %[1]s`, series, tc),
		fmt.Sprintf(`INSERT INTO mdl_grade_grades (id, itemid, userid, rawgrademax, finalgrade, timemodified)
			SELECT k + 1, 110 + k %% 4, 1000 + k / 4, 100, 40 + k %% 60, %[2]s FROM %[1]s`, series, tc),
		fmt.Sprintf(`INSERT INTO mdl_grade_grades_history (action, oldid, source, timemodified, itemid, userid, finalgrade)
			SELECT 1, k + 1, 'aggregation', %[2]s, 110 + k %% 4, 1000 + k / 4, 40 + k %% 60 FROM %[1]s`, series, tc),
		fmt.Sprintf(`INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, relateduserid, timecreated)
			SELECT '%[3]s', 'core', 'completed', 'course', 'course_completions', k + 1, 'u', 2, 1, 50, 10 + k %% 4, 1000 + k / 4, 10 + k %% 4, 1000 + k / 4, %[2]s FROM %[1]s`, series, tc, eventCourseCompleted),
		"ANALYZE",
	} {
		db.MustExec(stmt)
	}
}

// tuplesRead is the tuples every table of the database has returned so far
// to sequential and index scans.
func tuplesRead(b testing.TB, db *sqlx.DB) int64 {
	b.Helper()
	var n int64
	require.NoError(b, db.Get(&n, `SELECT COALESCE(SUM(seq_tup_read), 0) + COALESCE(SUM(idx_tup_fetch), 0) FROM pg_stat_user_tables`))
	return n
}

// tuplesAfter waits until the poll's statistics are reported (its backend
// has exited) and returns the tuples read since before.
func tuplesAfter(b testing.TB, db *sqlx.DB, before int64) int64 {
	b.Helper()
	time.Sleep(700 * time.Millisecond)
	return tuplesRead(b, db) - before
}
