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

// checkPlans has the database plan every query a poll runs (EXPLAIN, never
// the query) and names each one whose plan reads a growing table whole or
// walks the whole of one of its indexes. On PostgreSQL it plans as if the
// tables were large and every join selective (sequential scans, hash and
// merge joins off), so that what remains whole is what no index can bound:
// a small or freshly created table would otherwise be scanned because it is
// cheap. With since it also counts what a first poll would queue.
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
	// lastIDs is left out: MAX(id) reads one entry at the end of the
	// primary key, which a plan shows as an index walk without a bound.
	if m.settings.Changes == changesLog {
		query, args = q.completedLogged(0, changeChunk, from, courses)
		add("finding back-dated completions in "+q.t("logstore_standard_log"), query, args)
		query, args = q.regraded(0, changeChunk, from, courses)
		add("finding regraded course totals in "+q.t("grade_grades_history"), query, args)
	}
	var since int64
	if !m.settings.since.IsZero() {
		since = m.settings.since.Unix()
	}

	growing, aliases := map[string]bool{}, map[string]string{}
	for _, t := range growingTables {
		growing[q.t(t)] = true
	}
	// MariaDB and MySQL name a table in a plan by its alias in the query.
	for alias, t := range map[string]string{"cc": "course_completions", "rc": "course_completions", "u": "user",
		"pd": "user_info_data", "gg": "grade_grades", "h": "grade_grades_history", "l": "logstore_standard_log"} {
		aliases[alias] = q.t(t)
	}
	var notes []string
	err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
		if m.settings.Driver == driverPostgres {
			for _, set := range []string{"enable_seqscan", "enable_hashjoin", "enable_mergejoin"} {
				if _, err := tx.ExecContext(ctx, "SET LOCAL "+set+" = off"); err != nil {
					return err
				}
			}
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
