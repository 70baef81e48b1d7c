package moodle

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/adapters/internal/sqlplan"
)

// growingTables are the tables (without prefix) that grow with a site's
// users and history; a plan reading one of them whole gets slower every
// year. course, grade_items and user_info_field grow with the courses
// and fields only: reading them whole is cheap, and planners do so when
// they are small.
var growingTables = []string{"course_completions", "user", "user_info_data", "grade_grades",
	"grade_grades_history", "logstore_standard_log"}

// lookupSettings are the PostgreSQL planner settings of a poll's queries
// (planLookups), as one statement: each set for the transaction, those the
// server does not know (enable_memoize before PostgreSQL 14) left out.
const lookupSettings = `SELECT COUNT(set_config(s.name, v.setting, true))
FROM (VALUES ('join_collapse_limit', '1'), ('enable_hashjoin', 'off'), ('enable_mergejoin', 'off'),
  ('enable_seqscan', 'off'), ('enable_material', 'off'), ('enable_memoize', 'off'), ('enable_sort', 'off'),
  ('max_parallel_workers_per_gather', '0')) AS v(name, setting)
JOIN pg_settings s ON s.name = v.name`

// planLookups has PostgreSQL, for the rest of the transaction, plan a poll's
// queries as they are written (MariaDB and MySQL are told by the queries'
// STRAIGHT_JOIN): from the few completions a query selects (a page, or
// those the new log and grade-history rows name), one lookup by key in each
// joined table per completion, in the order of the query. Left to its
// statistics, the planner switches to hash or merge joins that read a user,
// course or grade table whole once it expects a few thousand rows, and to a
// full sort of every completion after the cursor instead of the incremental
// sort that stops at the page's end: rows read would then grow with the
// history (and change with the statistics), not with the page. So joins
// keep their written order (join_collapse_limit 1), and hash and merge
// joins, sequential scans, materialized and memoized inner sides and full
// sorts are turned off, and so are parallel workers; a method that is the
// only one possible is still used.
func planLookups(ctx context.Context, tx *sqlx.Tx, driver string) error {
	if driver != driverPostgres {
		return nil
	}
	var n int
	if err := tx.GetContext(ctx, &n, lookupSettings); err != nil {
		return fmt.Errorf("setting the planner for lookups: %w", err)
	}
	return nil
}

// checkPlans has the database plan every query a poll runs (EXPLAIN, never
// the query), with the settings the poll uses (planLookups), and names each
// one whose plan reads a growing table whole or walks the whole of one of
// its indexes. On PostgreSQL those settings also plan as if the tables were
// large and every join selective, so that what remains whole is what no
// index can bound: a small or freshly created table would otherwise be
// scanned because it is cheap. With since it also counts what a first poll
// would queue.
func (m *Moodle) checkPlans(ctx context.Context, db *sqlx.DB) ([]string, error) {
	q := m.queries()
	courses := m.courseIDs()
	now := m.clock.Now().Unix()
	from := now - int64(m.settings.Lookback/time.Second)
	type statement struct {
		what  string
		query string
		args  []any
	}
	var stmts []statement
	add := func(what, query string, args []any) {
		stmts = append(stmts, statement{what, query, args})
	}
	query, args := q.page(now, 0, courses, m.settings.PageSize)
	add("reading new completions", query, args)
	query, args = q.byIDs([]int64{1}, now)
	add("re-reading completions waiting to be sent", query, args)
	var since int64
	if !m.settings.since.IsZero() {
		since = m.settings.since.Unix()
	}

	growing, aliases := map[string]bool{}, map[string]string{}
	for _, t := range growingTables {
		growing[q.t(t)] = true
	}
	// MariaDB and MySQL name a table in a plan by its alias in the query.
	for alias, t := range map[string]string{"cc": "course_completions", "u": "user",
		"pd": "user_info_data", "gg": "grade_grades", "h": "grade_grades_history", "l": "logstore_standard_log"} {
		aliases[alias] = q.t(t)
	}
	var notes []string
	err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
		if err := planLookups(ctx, tx, m.settings.Driver); err != nil {
			return err
		}
		// lastIDs is not planned: MAX(id) reads one entry at the end of the
		// primary key, which a plan shows as an index walk without a bound.
		// The change scans are planned for a poll that finds the newest log
		// and history row: over a range that spans the whole of a small
		// table, a planner may as well walk another index of it whole.
		if m.settings.Changes == changesLog {
			var log, grade int64
			if err := tx.QueryRowxContext(ctx, q.lastIDs()).Scan(&log, &grade); err != nil {
				return fmt.Errorf("reading the newest ids of %s and %s: %w", q.t("logstore_standard_log"), q.t("grade_grades_history"), err)
			}
			query, args := q.completedLogged(log-1, log, from, courses)
			add("finding back-dated completions in "+q.t("logstore_standard_log"), query, args)
			query, args = q.regraded(grade-1, grade, from, courses)
			add("finding regraded course totals in "+q.t("grade_grades_history"), query, args)
		}
		for _, st := range stmts {
			scans, err := sqlplan.FullScans(ctx, tx, m.settings.Driver, st.query, st.args)
			if err != nil {
				return fmt.Errorf("planning the query %s: %w", st.what, err)
			}
			for i, t := range scans {
				if name, ok := aliases[t]; ok {
					scans[i] = name
				}
			}
			scans = slices.DeleteFunc(scans, func(t string) bool { return !growing[strings.ToLower(t)] })
			slices.Sort(scans)
			scans = slices.Compact(scans)
			if len(scans) > 0 {
				notes = append(notes, fmt.Sprintf("database: the query %s reads all of %s on every poll (a full scan or a walk of a whole index): check that Moodle's indexes on it exist (Site administration > Development > XMLDB editor > Check indexes)",
					st.what, strings.Join(scans, ", ")))
			}
		}
		if since == 0 {
			return nil
		}
		var n int64
		query, args := q.countSince(since, courses)
		if err := tx.GetContext(ctx, &n, query, args...); err != nil {
			return fmt.Errorf("counting the completions since %s: %w", m.sinceText(), err)
		}
		notes = append(notes, fmt.Sprintf("since %s would queue %s completions on a first poll (without a cursor; fewer if users or courses lack their codes)",
			m.sinceText(), thousands(n)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("moodle database: %w", err)
	}
	if since == 0 {
		notes = append(notes, "no since: the first poll starts at its own time and sends no completion dated before it")
	}
	return notes, nil
}

// sinceText writes since as configured: a date, or a time with its offset.
func (m *Moodle) sinceText() string {
	t := m.settings.since.In(m.loc)
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 {
		return t.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339)
}

// thousands writes n with a comma between each group of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
