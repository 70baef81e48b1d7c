package moodle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the mysql driver
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the postgres driver

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// maxRetry bounds the completions a database cursor keeps for retrying; the
// oldest are dropped beyond it, with a warning.
const maxRetry = 10000

// retryChunk is how many retried completions are read per query.
const retryChunk = 500

// dbCursor is the position of database mode, stored as JSON by the core.
//
// Time and ID are the newest completion read, in (timecompleted, id) order.
// Every poll reads again from Time minus the lookback window, because cron
// writes completions back-dated; enqueueing is idempotent, so rows read
// twice change nothing. Retry lists completions that could not be sent (a
// user without a person id, a course without a code or pass mark): they are
// not done, and each poll reads them again by id, however old, until they
// can be sent or are gone from Moodle.
type dbCursor struct {
	Time  int64   `json:"t"`
	ID    int64   `json:"id"`
	Retry []int64 `json:"retry,omitempty"`
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
	db, err := sqlx.Open(m.settings.Driver, m.dsn)
	if err != nil {
		// The driver's message may quote the DSN: do not pass it on.
		return nil, fmt.Errorf("moodle database: the %s DSN from %s is not valid", m.settings.Driver, m.dsnSource())
	}
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
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
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
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
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("moodle: stored cursor %q is not a database-mode cursor: %w", raw, err)
		}
	}
	q := m.queries()
	rep := newReporter()
	defer rep.log(m.log)
	var total source.Summary

	windowStart := max(cur.Time-int64(m.settings.Lookback/time.Second), 0)
	retry := map[int64]bool{}

	// Completions left over from earlier polls and now behind the window.
	for start := 0; start < len(cur.Retry); start += retryChunk {
		ids := cur.Retry[start:min(start+retryChunk, len(cur.Retry))]
		query, args := q.byIDs(ids, windowStart)
		rows, err := m.read(ctx, db, query, args)
		if err != nil {
			return err
		}
		sum, err := m.commitRows(ctx, sink, rows, rep, retry, func(r map[int64]bool) dbCursor {
			// Ids of this chunk not yet re-read stay; later chunks are untouched.
			return dbCursor{Time: cur.Time, ID: cur.ID, Retry: mergeRetry(r, cur.Retry[start+len(ids):])}
		})
		if err != nil {
			return err
		}
		total = total.Add(sum)
	}

	// The window: everything from the lookback start on, keyset-paged.
	afterTime, afterID := windowStart, int64(0)
	var courses []int64
	for id := range m.settings.codeOf {
		courses = append(courses, id)
	}
	sort.Slice(courses, func(i, j int) bool { return courses[i] < courses[j] })
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
		mark := cur
		sum, err := m.commitRows(ctx, sink, rows, rep, retry, func(r map[int64]bool) dbCursor {
			return dbCursor{Time: mark.Time, ID: mark.ID, Retry: mergeRetry(r, nil)}
		})
		if err != nil {
			return err
		}
		total = total.Add(sum)
		if len(rows) < m.settings.PageSize {
			break
		}
	}
	m.log.Debug("poll done", "queued", total.Queued, "unchanged", total.Unchanged, "waiting", len(retry))
	return nil
}

// read runs a completion query in a read-only transaction.
func (m *Moodle) read(ctx context.Context, db *sqlx.DB, query string, args []any) ([]completionRow, error) {
	var rows []completionRow
	err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
		return tx.SelectContext(ctx, &rows, query, args...)
	})
	if err != nil {
		return nil, fmt.Errorf("moodle database: reading %s: %w", m.queries().t("course_completions"), err)
	}
	return rows, nil
}

// commitRows maps rows and commits those that can be sent; the others are
// reported and added to retry. cursor builds the checkpoint from retry.
func (m *Moodle) commitRows(ctx context.Context, sink source.Sink, rows []completionRow, rep *reporter,
	retry map[int64]bool, cursor func(map[int64]bool) dbCursor) (source.Summary, error) {
	var ready []result.Completion
	for _, r := range rows {
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

// checkDatabase connects, finds the tables with the configured prefix and
// probes the columns database mode reads.
func (m *Moodle) checkDatabase(ctx context.Context) ([]string, error) {
	db, err := m.database(ctx)
	if err != nil {
		return nil, err
	}
	q := m.queries()
	need := requiredTables
	if m.settings.profile != "" {
		need = append(append(need[:0:0], requiredTables...), profileTables...)
	}
	names := make([]string, len(need))
	for i, t := range need {
		names[i] = q.t(t.name)
	}
	var notes []string
	err = readOnly(ctx, db, func(tx *sqlx.Tx) error {
		query, args := q.tables(names)
		var found []string
		if err := tx.SelectContext(ctx, &found, query, args...); err != nil {
			return fmt.Errorf("moodle database: listing tables: %w", err)
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
			return fmt.Errorf("moodle database: tables %s not found with prefix %q: check prefix ($CFG->prefix in Moodle's config.php) and that the DSN names Moodle's database",
				strings.Join(missing, ", "), m.settings.Prefix)
		}
		for _, t := range need {
			if _, err := tx.ExecContext(ctx, q.probe(t.name, t.columns)); err != nil {
				return fmt.Errorf("moodle database: cannot read columns %s of %s (is the account allowed to SELECT it?): %w",
					strings.Join(t.columns, ", "), q.t(t.name), err)
			}
		}
		if m.settings.profile != "" {
			var n int
			if err := tx.GetContext(ctx, &n, q.profileField(), m.settings.profile); err != nil {
				return fmt.Errorf("moodle database: reading %s: %w", q.t("user_info_field"), err)
			}
			if n == 0 {
				return fmt.Errorf("moodle database: person_field %s: no custom profile field with short name %q in %s",
					m.settings.PersonField, m.settings.profile, q.t("user_info_field"))
			}
		}
		if m.settings.CourseField != fieldCourses {
			var n int
			if err := tx.GetContext(ctx, &n, q.coursesWithoutCode(m.settings.CourseField)); err != nil {
				return fmt.Errorf("moodle database: reading %s: %w", q.t("course"), err)
			}
			if n > 0 {
				notes = append(notes, fmt.Sprintf("%d courses with completion tracking have an empty %s: their completions wait until they have one (course_field)",
					n, m.settings.CourseField))
			}
		}
		return nil
	})
	if err != nil {
		return notes, err
	}
	return append(notes, fmt.Sprintf("database: found the Moodle tables with prefix %s", m.settings.Prefix)), nil
}

// errNoEnroller is returned by the enroller without url and token.
var errNoEnroller = errors.New("this Moodle connection has no url and token_file/token_env: set them to let the bridge enrol learners through Moodle's web services")
