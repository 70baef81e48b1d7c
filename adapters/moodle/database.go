package moodle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/adapters/internal/readonly"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// maxRetry bounds the completions a database cursor keeps for retrying; the
// oldest are dropped beyond it, with a warning.
const maxRetry = 10000

// retryChunk is how many retried completions are read per query.
const retryChunk = 500

// changeChunk is how many log or grade-history ids one query of the change
// scan covers, so that a scan after a long pause is read in bounded pieces.
const changeChunk = 20000

// dbCursor is the position of database mode, stored as JSON by the core.
//
// Time and ID are the newest completion read, in (timecompleted, id) order:
// each poll reads forward from there, with a lower bound on Moodle's index
// on timecompleted, so it reads what is new, not the history behind it.
// Start is where the first poll began: since, or that poll's own time. No
// completion dated before Start (or since) is ever sent, so connecting an
// existing Moodle does not send its history.
//
// Behind the cursor, two things still change: cron writes completions
// back-dated (timecompleted is the latest criterion's time, earlier than
// when the row is written), and a course total may be regraded after the
// completion was sent. With changes: log (Changes set) each poll reads the
// ids written since the last poll in two append-only tables Moodle keeps:
// logstore_standard_log's course_completed events (a back-dated completion
// is logged when it is written, with its course_completions id) and
// grade_grades_history (a row per change of a grade, the course total's
// included). Both are read by primary key and only as far as the newest id
// read when the poll began; the next poll starts again where the previous
// one started, so a row whose id was taken before a scan but committed after
// it is read by the next. The completions they name are sent when completed
// within lookback of Time. With changes: window, or once for a cursor
// written before Changes existed, a poll reads the whole lookback window
// again instead; enqueueing is idempotent, so rows read twice change nothing.
//
// Retry lists completions that could not be sent (a user without a person
// id, a course without a code or pass mark): they are not done, and each
// poll reads them again by id, however old, until they can be sent or are
// gone from Moodle.
type dbCursor struct {
	Time    int64        `json:"t"`
	ID      int64        `json:"id"`
	Start   int64        `json:"s,omitempty"`
	Changes *changeMarks `json:"c,omitempty"`
	Retry   []int64      `json:"retry,omitempty"`
}

// changeMarks are the change scan's positions: ids in
// logstore_standard_log (Log) and grade_grades_history (Grade). A scan reads
// the ids after LogFrom and GradeFrom, where the previous scan started, up
// to the newest; then From takes the previous end and the end the new one.
type changeMarks struct {
	Log       int64 `json:"log"`
	LogFrom   int64 `json:"log_from"`
	Grade     int64 `json:"gh"`
	GradeFrom int64 `json:"gh_from"`
}

func (m *Moodle) queries() queries {
	return queries{driver: m.settings.Driver, prefix: m.settings.Prefix, profile: m.settings.profile}
}

// database opens the connection pool on first use.
func (m *Moodle) database(ctx context.Context) (*sqlx.DB, error) {
	m.dbMu.Lock()
	defer m.dbMu.Unlock()
	if m.db != nil {
		return m.db, nil
	}
	pool, err := readonly.Open(m.settings.Driver, m.dsn)
	if err != nil {
		// The driver's message may quote the DSN: readonly.Open's does not.
		return nil, fmt.Errorf("moodle database: the %s DSN from %s is not valid", m.settings.Driver, m.dsnSource())
	}
	db := sqlx.NewDb(pool, m.settings.Driver)
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close() // never used: the failed ping is the error
		return nil, fmt.Errorf("moodle database: cannot connect with the %s DSN from %s: %w", m.settings.Driver, m.dsnSource(), err)
	}
	m.db = db
	return db, nil
}

func (m *Moodle) dsnSource() string {
	if m.settings.DSNEnv != "" {
		return "environment variable " + m.settings.DSNEnv
	}
	return m.settings.DSNFile
}

// readOnly runs fn in a read-only transaction.
func readOnly(ctx context.Context, db *sqlx.DB, fn func(*sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to lose
	return fn(tx)
}

func (m *Moodle) pollDatabase(ctx context.Context, sink source.Sink) error {
	db, err := m.database(ctx)
	if err != nil {
		return err
	}
	raw, err := sink.Cursor(ctx)
	if err != nil {
		return err
	}
	var cur dbCursor
	fresh := len(raw) == 0
	if !fresh {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("moodle: stored cursor %q is not a database-mode cursor: %w", raw, err)
		}
	}
	q := m.queries()
	rep := newReporter()
	defer rep.log(m.log)
	var total source.Summary
	var read int

	// Completions before since are never read, not even to retry them;
	// nor, once a first poll has started, those before its start.
	var since int64
	if !m.settings.since.IsZero() {
		since = m.settings.since.Unix()
	}
	if fresh {
		start := since
		if start == 0 {
			start = m.clock.Now().Unix()
		}
		cur = dbCursor{Time: start, Start: start}
	}
	floor := max(since, cur.Start, 0)
	courses := m.courseIDs()
	lookback := int64(m.settings.Lookback / time.Second)
	logMode := m.settings.Changes == changesLog

	// The ends of the change scan are read first: whatever is written from
	// here on, this poll's forward read or the next scan finds.
	var last changeMarks
	if logMode {
		err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
			return tx.QueryRowxContext(ctx, q.lastIDs()).Scan(&last.Log, &last.Grade)
		})
		if err != nil {
			return fmt.Errorf("moodle database: reading the newest ids of %s and %s (changes: log; set changes: window if the account may not read them): %w",
				q.t("logstore_standard_log"), q.t("grade_grades_history"), err)
		}
	}
	retry := map[int64]bool{}
	save := func(rows []completionRow, rest []int64) error {
		read += len(rows)
		mark := cur
		sum, err := m.commitRows(ctx, sink, rows, rep, retry, func(r map[int64]bool) dbCursor {
			mark.Retry = mergeRetry(r, rest)
			return mark
		})
		total = total.Add(sum)
		return err
	}

	// Completions left over from earlier polls, by id.
	for start := 0; start < len(cur.Retry); start += retryChunk {
		ids := cur.Retry[start:min(start+retryChunk, len(cur.Retry))]
		query, args := q.byIDs(ids, floor)
		rows, err := m.read(ctx, db, query, args)
		if err != nil {
			return err
		}
		// Ids of this chunk not yet re-read stay; later chunks are untouched.
		if err := save(rows, cur.Retry[start+len(ids):]); err != nil {
			return err
		}
	}

	// Forward from the cursor; from the start of the lookback window
	// instead when the window stands in for the change scan.
	afterTime, afterID := cur.Time, cur.ID
	if !logMode || (cur.Changes == nil && !fresh) {
		afterTime, afterID = max(cur.Time-lookback, floor), 0
	}
	committed := false
	for {
		query, args := q.page(afterTime, afterID, courses, m.settings.PageSize)
		rows, err := m.read(ctx, db, query, args)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		last := rows[len(rows)-1]
		afterTime, afterID = last.TimeCompleted, last.ID
		if afterTime > cur.Time || (afterTime == cur.Time && afterID > cur.ID) {
			cur.Time, cur.ID = afterTime, afterID
		}
		if err := save(rows, nil); err != nil {
			return err
		}
		committed = true
		if len(rows) < m.settings.PageSize {
			break
		}
	}

	// What changed behind the cursor since the last scan.
	if logMode {
		next := changeMarks{Log: last.Log, LogFrom: last.Log, Grade: last.Grade, GradeFrom: last.Grade}
		if prev := cur.Changes; prev != nil {
			from := max(cur.Time-lookback, floor)
			for _, scan := range []struct {
				after, to int64
				query     func(after, to, from int64, courses []int64) (string, []any)
			}{
				{prev.LogFrom, last.Log, q.completedLogged},
				{prev.GradeFrom, last.Grade, q.regraded},
			} {
				for lo := scan.after; lo < scan.to; lo += changeChunk {
					query, args := scan.query(lo, min(lo+changeChunk, scan.to), from, courses)
					rows, err := m.read(ctx, db, query, args)
					if err != nil {
						return err
					}
					if len(rows) > 0 {
						if err := save(rows, nil); err != nil {
							return err
						}
					}
				}
			}
			next.LogFrom, next.GradeFrom = min(prev.Log, last.Log), min(prev.Grade, last.Grade)
		}
		if cur.Changes == nil || *cur.Changes != next {
			cur.Changes = &next
			committed = false
		}
	}
	// A first poll keeps its start even when it found nothing.
	if !committed && (fresh || logMode) {
		if err := save(nil, nil); err != nil {
			return err
		}
	}
	m.log.Debug("poll done", "read", read, "queued", total.Queued, "unchanged", total.Unchanged, "waiting", len(retry))
	return nil
}

// courseIDs returns the mapped Moodle course ids in order (course_field:
// courses), or nil.
func (m *Moodle) courseIDs() []int64 {
	var courses []int64
	for id := range m.settings.codeOf {
		courses = append(courses, id)
	}
	sort.Slice(courses, func(i, j int) bool { return courses[i] < courses[j] })
	return courses
}

// read runs a completion query in a read-only transaction planned for
// lookups (planLookups) and returns its rows in (timecompleted, id) order,
// each completion once. The queries leave the order to it: on PostgreSQL a
// full sort is what planLookups makes the planner avoid.
func (m *Moodle) read(ctx context.Context, db *sqlx.DB, query string, args []any) ([]completionRow, error) {
	var rows []completionRow
	err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
		if err := planLookups(ctx, tx, m.settings.Driver); err != nil {
			return err
		}
		return tx.SelectContext(ctx, &rows, query, args...)
	})
	if err != nil {
		return nil, fmt.Errorf("moodle database: reading %s: %w", m.queries().t("course_completions"), err)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].TimeCompleted != rows[j].TimeCompleted {
			return rows[i].TimeCompleted < rows[j].TimeCompleted
		}
		return rows[i].ID < rows[j].ID
	})
	// The change scans name a completion once per log or history row.
	return slices.CompactFunc(rows, func(a, b completionRow) bool { return a.ID == b.ID }), nil
}

// commitRows maps rows and commits those that can be sent; the others are
// reported and added to retry, but for those of deleted users and courses,
// which are passed over. cursor builds the checkpoint from retry.
func (m *Moodle) commitRows(ctx context.Context, sink source.Sink, rows []completionRow, rep *reporter,
	retry map[int64]bool, cursor func(map[int64]bool) dbCursor) (source.Summary, error) {
	var ready []result.Completion
	for _, r := range rows {
		if !r.sendable() {
			m.log.Debug("completion passed over: its user is deleted or its course is gone",
				"completion_id", r.ID, "user_found", r.UserRow.Valid, "course_found", r.CourseRow.Valid)
			continue
		}
		c, p := m.settings.complete(m.factsOf(r), m.loc)
		if p != nil {
			rep.add(*p)
			retry[r.ID] = true
			continue
		}
		delete(retry, r.ID)
		ready = append(ready, c)
	}
	cp, err := json.Marshal(cursor(retry))
	if err != nil {
		return source.Summary{}, err
	}
	sum, _, err := commit(ctx, sink, source.Checkpoint{Cursor: cp}, func(add func(result.Completion) error) error {
		for _, c := range ready {
			if err := add(c); err != nil {
				return err
			}
		}
		return nil
	})
	return sum, err
}

// mergeRetry returns the sorted union of the retry set and rest, keeping
// the newest maxRetry ids.
func mergeRetry(set map[int64]bool, rest []int64) []int64 {
	seen := map[int64]bool{}
	out := make([]int64, 0, len(set)+len(rest))
	for id := range set {
		seen[id] = true
		out = append(out, id)
	}
	for _, id := range rest {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	if len(out) > maxRetry {
		out = out[len(out)-maxRetry:]
	}
	return out
}

// factsOf turns a database row into facts.
func (m *Moodle) factsOf(r completionRow) facts {
	s := m.settings
	f := facts{
		UserID: r.UserID, CourseID: r.CourseID, CourseName: r.FullName, ShortName: r.ShortName,
		CompletedAt: time.Unix(r.TimeCompleted, 0),
		SourceRef:   fmt.Sprintf("%s id %d", m.queries().t("course_completions"), r.ID),
	}
	switch {
	case s.profile != "":
		f.PersonID = strings.TrimSpace(r.Profile.String)
	case s.PersonField == fieldUsername:
		f.PersonID = strings.TrimSpace(r.Username)
	case s.PersonField == fieldEmail:
		f.PersonID = strings.TrimSpace(r.Email)
	default:
		f.PersonID = strings.TrimSpace(r.UserIDNumber)
	}
	switch s.CourseField {
	case fieldShortname:
		f.Code = strings.TrimSpace(r.ShortName)
	case fieldCourses:
		f.Code = s.codeOf[r.CourseID]
	default:
		f.Code = strings.TrimSpace(r.CourseIDNum)
	}
	if r.GradeItemID.Valid && r.FinalGrade.Valid {
		f.Grade = r.FinalGrade.String
		// The effective maximum: the user's own (rawgrademax) unless the
		// course total is calculated, then the item's.
		f.GradeMax = r.RawGradeMax.String
		if strings.TrimSpace(r.Calculation.String) != "" || !r.RawGradeMax.Valid {
			f.GradeMax = r.ItemGradeMax.String
		}
	}
	if r.GradePass.Valid {
		f.PassMark = r.GradePass.String
	}
	return f
}

// checkDatabase connects, finds the tables with the configured prefix,
// probes the columns database mode reads and checks the mapping fields
// exist. A failed connection or missing tables end the check; the other
// problems are all reported.
func (m *Moodle) checkDatabase(ctx context.Context) ([]string, []error) {
	db, err := m.database(ctx)
	if err != nil {
		return nil, []error{err}
	}
	q := m.queries()
	need := requiredTables
	if m.settings.Changes == changesLog {
		need = append(need[:0:0], need...)
		need = append(need, changeTables...)
	}
	if m.settings.profile != "" {
		need = append(need[:0:0], need...)
		need = append(need, profileTables...)
	}
	names := make([]string, len(need))
	for i, t := range need {
		names[i] = q.t(t.name)
	}
	var found []string
	err = readOnly(ctx, db, func(tx *sqlx.Tx) error {
		query, args := q.tables(names)
		return tx.SelectContext(ctx, &found, query, args...)
	})
	if err != nil {
		return nil, []error{fmt.Errorf("moodle database: listing tables: %w", err)}
	}
	have := map[string]bool{}
	for _, f := range found {
		have[strings.ToLower(f)] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, []error{fmt.Errorf("moodle database: tables %s not found with prefix %q: check prefix ($CFG->prefix in Moodle's config.php) and that the DSN names Moodle's database",
			strings.Join(missing, ", "), m.settings.Prefix)}
	}

	// Each probe in its own transaction: on PostgreSQL a failed statement
	// spoils the rest of its transaction.
	var notes []string
	var problems []error
	for _, t := range need {
		err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
			_, err := tx.ExecContext(ctx, q.probe(t.name, t.columns))
			return err
		})
		if err != nil {
			problems = append(problems, fmt.Errorf("moodle database: cannot read columns %s of %s (is the account allowed to SELECT it?): %w",
				strings.Join(t.columns, ", "), q.t(t.name), err))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if m.settings.profile != "" {
		var n int
		err := readOnly(ctx, db, func(tx *sqlx.Tx) error { return tx.GetContext(ctx, &n, q.profileField(), m.settings.profile) })
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("moodle database: reading %s: %w", q.t("user_info_field"), err))
		case n == 0:
			problems = append(problems, fmt.Errorf("moodle database: person_field %s: no custom profile field with short name %q in %s: create it under Site administration > Users > User profile fields or correct the short name",
				m.settings.PersonField, m.settings.profile, q.t("user_info_field")))
		}
	}
	if m.settings.CourseField == fieldCourses {
		ids := make([]int64, 0, len(m.settings.codeOf))
		for id := range m.settings.codeOf {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		var exist []int64
		err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
			query, args := q.courseIDs(ids)
			return tx.SelectContext(ctx, &exist, query, args...)
		})
		if err != nil {
			problems = append(problems, fmt.Errorf("moodle database: reading %s: %w", q.t("course"), err))
		} else {
			have := map[int64]bool{}
			for _, id := range exist {
				have[id] = true
			}
			for _, id := range ids {
				if !have[id] {
					problems = append(problems, fmt.Errorf("moodle database: courses: Elearningcode %s maps to Moodle course id %d, which is not in %s",
						m.settings.codeOf[id], id, q.t("course")))
				}
			}
		}
	} else {
		var n int
		err := readOnly(ctx, db, func(tx *sqlx.Tx) error { return tx.GetContext(ctx, &n, q.coursesWithoutCode(m.settings.CourseField)) })
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("moodle database: reading %s: %w", q.t("course"), err))
		case n > 0:
			notes = append(notes, fmt.Sprintf("%d courses with completion tracking have an empty %s: their completions wait until they have one (course_field)",
				n, m.settings.CourseField))
		}
	}
	if len(problems) > 0 {
		return notes, problems
	}
	notes = append(notes, fmt.Sprintf("database: found the Moodle tables with prefix %s", m.settings.Prefix))
	plans, err := m.checkPlans(ctx, db)
	if err != nil {
		return notes, []error{err}
	}
	return append(notes, plans...), nil
}

// errNoEnroller is returned by the enroller without url and token.
var errNoEnroller = errors.New("this Moodle connection has no url and token_file/token_env: set them to let the bridge enrol learners through Moodle's web services")
