package scorm

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/adapters/scorm/cmi"
)

// This file holds every SQL statement of the adapter. Statements are
// written with '?' placeholders and rebound per driver (sqlx.Rebind); the
// only other per-dialect text is tableExistsSQL and the EXPLAIN handling in
// check.go. Table names come from the validated prefix (letters, digits,
// underscores), never from data.

// schema is the layout of Moodle's SCORM tracking tables.
type schema int

const (
	schemaTrack   schema = iota // Moodle < 4.3: scorm_scoes_track
	schemaAttempt               // Moodle ≥ 4.3: scorm_attempt + scorm_scoes_value + scorm_element
)

func (s schema) String() string {
	if s == schemaAttempt {
		return "scorm_attempt (Moodle 4.3 and later)"
	}
	return "scorm_scoes_track (Moodle before 4.3)"
}

// tableExistsSQL counts tables named ? in the connection's schema.
func tableExistsSQL(driver string) string {
	if driver == "postgres" {
		return "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
	}
	return "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
}

// tableExists reports whether table exists in the connection's schema.
func tableExists(ctx context.Context, q queryer, driver, table string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, tableExistsSQL(driver), table).Scan(&n); err != nil {
		return false, fmt.Errorf("look for table %s: %w", table, err)
	}
	return n > 0, nil
}

// queryer is what the statements run on: a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// moodleSQL builds the Moodle preset's statements for one schema.
type moodleSQL struct {
	driver string
	prefix string
	schema schema
}

func (m moodleSQL) rebind(q string) string { return sqlx.Rebind(sqlx.BindType(m.driver), q) }

// trackTable names the table holding timemodified, for notes.
func (m moodleSQL) trackTable() string {
	if m.schema == schemaAttempt {
		return m.prefix + "scorm_scoes_value"
	}
	return m.prefix + "scorm_scoes_track"
}

// pairs returns the statement listing (userid, scormid, MAX(timemodified))
// of the pairs with a value modified at or after the first argument, in key
// order, after the pair given by three further arguments (userid, userid,
// scormid) unless first, limited by the last argument.
func (m moodleSQL) pairs(first bool) string {
	var b strings.Builder
	if m.schema == schemaAttempt {
		fmt.Fprintf(&b, "SELECT a.userid, a.scormid, MAX(v.timemodified) FROM %[1]sscorm_scoes_value v "+
			"JOIN %[1]sscorm_attempt a ON a.id = v.attemptid WHERE v.timemodified >= ?", m.prefix)
	} else {
		fmt.Fprintf(&b, "SELECT a.userid, a.scormid, MAX(a.timemodified) FROM %sscorm_scoes_track a WHERE a.timemodified >= ?", m.prefix)
	}
	if !first {
		b.WriteString(" AND (a.userid > ? OR (a.userid = ? AND a.scormid > ?))")
	}
	b.WriteString(" GROUP BY a.userid, a.scormid ORDER BY a.userid, a.scormid LIMIT ?")
	return m.rebind(b.String())
}

// values returns the statement reading every SCORM element this adapter
// uses, of n (userid, scormid) pairs given as 2n arguments after the
// element names: userid, scormid, attempt, scoid, element, value, timemodified.
func (m moodleSQL) values(n int) string {
	var b strings.Builder
	if m.schema == schemaAttempt {
		fmt.Fprintf(&b, "SELECT a.userid, a.scormid, a.attempt, v.scoid, e.element, v.value, v.timemodified "+
			"FROM %[1]sscorm_attempt a JOIN %[1]sscorm_scoes_value v ON v.attemptid = a.id "+
			"JOIN %[1]sscorm_element e ON e.id = v.elementid WHERE e.element IN (%[2]s) AND (", m.prefix, marks(len(cmi.Elements)))
	} else {
		fmt.Fprintf(&b, "SELECT a.userid, a.scormid, a.attempt, a.scoid, a.element, a.value, a.timemodified "+
			"FROM %sscorm_scoes_track a WHERE a.element IN (%s) AND (", m.prefix, marks(len(cmi.Elements)))
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(a.userid = ? AND a.scormid = ?)")
	}
	b.WriteString(")")
	return m.rebind(b.String())
}

// users returns the statement reading id, the person field and deleted of
// n users.
func (m moodleSQL) users(field string, n int) string {
	return m.rebind(fmt.Sprintf("SELECT id, %s, deleted FROM %suser WHERE id IN (%s)", field, m.prefix, marks(n)))
}

// packages returns the statement reading scorm id, course id, course
// idnumber and shortname of n SCORM activities.
func (m moodleSQL) packages(n int) string {
	return m.rebind(fmt.Sprintf("SELECT s.id, s.course, c.idnumber, c.shortname FROM %[1]sscorm s "+
		"JOIN %[1]scourse c ON c.id = s.course WHERE s.id IN (%[2]s)", m.prefix, marks(n)))
}

// scoes returns the statement reading id, scorm and identifier of the SCOs
// (not assets) of n SCORM activities.
func (m moodleSQL) scoes(n int) string {
	return m.rebind(fmt.Sprintf("SELECT id, scorm, identifier FROM %sscorm_scoes WHERE scormtype = 'sco' AND scorm IN (%s)", m.prefix, marks(n)))
}

// customColumns are the columns a custom query must return.
var customColumns = []string{
	"person_id", "elearning_code", "attempt_key", "sco_key", "lesson_status", "completion_status",
	"success_status", "score_raw", "score_min", "score_max", "score_scaled", "modified",
}

// customSQL builds the custom preset's statements around the operator's
// query, which becomes a derived table q. Its own placeholders come first; a
// newline closes it, as it may end in a -- comment.
type customSQL struct {
	driver string
	query  *namedSQL
}

func (c customSQL) rebind(q string) string { return sqlx.Rebind(sqlx.BindType(c.driver), q) }

// inner returns the operator's query and its arguments for cursorTime.
func (c customSQL) inner(cursorTime int64) (string, []any) {
	args := make([]any, len(c.query.names))
	for i := range args {
		args[i] = cursorTime // :cursor_time is the only parameter
	}
	return c.query.sql, args
}

// pairs is like moodleSQL.pairs for (person_id, elearning_code).
func (c customSQL) pairs(since int64, first bool, after [2]string, limit int) (string, []any) {
	inner, args := c.inner(since)
	q := "SELECT q.person_id, q.elearning_code, MAX(q.modified) FROM (" + inner + "\n) q"
	if !first {
		q += " WHERE (q.person_id > ? OR (q.person_id = ? AND q.elearning_code > ?))"
		args = append(args, after[0], after[0], after[1])
	}
	q += " GROUP BY q.person_id, q.elearning_code ORDER BY q.person_id, q.elearning_code LIMIT ?"
	return c.rebind(q), append(args, limit)
}

// rows reads every row of the given pairs, whatever their time.
func (c customSQL) rows(pairs [][2]string) (string, []any) {
	inner, args := c.inner(0)
	var b strings.Builder
	b.WriteString("SELECT q." + strings.Join(customColumns, ", q.") + " FROM (" + inner + "\n) q WHERE ")
	for i, p := range pairs {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(q.person_id = ? AND q.elearning_code = ?)")
		args = append(args, p[0], p[1])
	}
	return c.rebind(b.String()), args
}

// probe returns the operator's query wrapped to return no rows, for
// checking its columns.
func (c customSQL) probe() (string, []any) {
	inner, args := c.inner(0)
	return c.rebind("SELECT * FROM (" + inner + "\n) q WHERE 1 = 0"), args
}

// marks returns n comma-separated placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
