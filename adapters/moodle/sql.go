package moodle

import (
	"database/sql"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// queries holds all SQL of database mode, for both dialects. Statements are
// written once with '?' placeholders and rebound per driver (sqlx.Rebind);
// only the name of the current schema differs.
type queries struct {
	driver  string
	prefix  string
	profile string // custom profile field short name, or ""
}

// requiredTables lists the tables database mode reads (without prefix) and
// the columns it needs from each.
var requiredTables = []struct {
	name    string
	columns []string
}{
	{"course_completions", []string{"id", "userid", "course", "timecompleted"}},
	{"user", []string{"id", "deleted", "username", "idnumber", "email"}},
	{"course", []string{"id", "fullname", "shortname", "idnumber", "enablecompletion"}},
	{"grade_items", []string{"id", "courseid", "itemtype", "calculation", "grademax", "gradepass"}},
	{"grade_grades", []string{"id", "itemid", "userid", "finalgrade", "rawgrademax"}},
}

// changeTables are needed only with changes: log.
var changeTables = []struct {
	name    string
	columns []string
}{
	{"logstore_standard_log", []string{"id", "eventname", "objectid"}},
	{"grade_grades_history", []string{"id", "itemid", "userid"}},
}

// profileTables are needed only with person_field: profile:<shortname>.
var profileTables = []struct {
	name    string
	columns []string
}{
	{"user_info_field", []string{"id", "shortname"}},
	{"user_info_data", []string{"id", "userid", "fieldid", "data"}},
}

func (q queries) t(name string) string { return q.prefix + name }

func (q queries) rebind(query string) string {
	return sqlx.Rebind(sqlx.BindType(map[string]string{driverPostgres: "postgres", driverMySQL: "mysql"}[q.driver]), query)
}

// completionRow is one course completion with everything the mapping needs.
// UserRow and CourseRow are the ids of its user (not deleted) and course,
// null when Moodle has no such row: such a completion is read, and moves a
// page on, but is never sent.
type completionRow struct {
	ID            int64          `db:"id"`
	UserID        int64          `db:"userid"`
	CourseID      int64          `db:"course"`
	TimeCompleted int64          `db:"timecompleted"`
	UserRow       sql.NullInt64  `db:"u_id"`
	CourseRow     sql.NullInt64  `db:"c_id"`
	UserIDNumber  string         `db:"u_idnumber"`
	Username      string         `db:"username"`
	Email         string         `db:"email"`
	Profile       sql.NullString `db:"profile_value"`
	CourseIDNum   string         `db:"c_idnumber"`
	ShortName     string         `db:"shortname"`
	FullName      string         `db:"fullname"`
	GradeItemID   sql.NullInt64  `db:"gi_id"`
	Calculation   sql.NullString `db:"calculation"`
	ItemGradeMax  sql.NullString `db:"grademax"`
	GradePass     sql.NullString `db:"gradepass"`
	FinalGrade    sql.NullString `db:"finalgrade"`
	RawGradeMax   sql.NullString `db:"rawgrademax"`
}

// sendable tells whether the completion's user (not deleted) and course
// exist.
func (r completionRow) sendable() bool { return r.UserRow.Valid && r.CourseRow.Valid }

// completionColumns are the columns of course_completions a query reads.
const completionColumns = "id, userid, course, timecompleted"

// selectCompletions is the common head of the completion queries: from
// (the tables that select the completions, course_completions among them
// as cc) and then, per completion, its user, course, course total item and
// grade, each a LEFT JOIN by key. The joins are to be made in the order
// written, each a lookup per completion: MariaDB and MySQL are told so
// (STRAIGHT_JOIN), PostgreSQL by planLookups. Rows whose user (not deleted)
// or course is missing come back with UserRow or CourseRow null. The
// queries have no ORDER BY: read sorts. Its arguments (the profile field's
// short name) come after those of from.
func (q queries) selectCompletions(from string) (string, []any) {
	var args []any
	profileCol, profileJoin := "NULL", ""
	if q.profile != "" {
		profileCol = "pd.data"
		// The field's id is read once per query, then each user's value by
		// Moodle's unique (userid, fieldid) index. Moodle keeps short names
		// unique; should two fields share one, the older counts.
		profileJoin = fmt.Sprintf(`
LEFT JOIN %[2]s pd ON pd.userid = u.id AND pd.fieldid = (SELECT MIN(pf.id) FROM %[1]s pf WHERE pf.shortname = ?)`,
			q.t("user_info_field"), q.t("user_info_data"))
		args = append(args, q.profile)
	}
	straight := ""
	if q.driver == driverMySQL {
		straight = "STRAIGHT_JOIN "
	}
	return fmt.Sprintf(`SELECT %[8]scc.id, cc.userid, cc.course, cc.timecompleted, u.id AS u_id, c.id AS c_id,
  COALESCE(u.idnumber, '') AS u_idnumber, COALESCE(u.username, '') AS username, COALESCE(u.email, '') AS email,
  %[1]s AS profile_value,
  COALESCE(c.idnumber, '') AS c_idnumber, COALESCE(c.shortname, '') AS shortname, COALESCE(c.fullname, '') AS fullname,
  gi.id AS gi_id, gi.calculation, gi.grademax, gi.gradepass, gg.finalgrade, gg.rawgrademax
FROM %[2]s
LEFT JOIN %[3]s u ON u.id = cc.userid AND u.deleted = 0
LEFT JOIN %[4]s c ON c.id = cc.course%[5]s
LEFT JOIN %[6]s gi ON gi.courseid = cc.course AND gi.itemtype = 'course'
LEFT JOIN %[7]s gg ON gg.itemid = gi.id AND gg.userid = cc.userid`,
		profileCol, from, q.t("user"), q.t("course"), profileJoin,
		q.t("grade_items"), q.t("grade_grades"), straight), args
}

// page reads up to limit completions after (afterTime, afterID) in
// (timecompleted, id) order, only of the given courses when courses is
// non-empty, those of deleted users included (not sendable). The page is
// chosen from course_completions alone, in a derived table with its own
// ORDER BY and LIMIT, before anything is joined: each page reads about
// limit entries of Moodle's index on timecompleted (mdl_courcomp_tim_ix)
// and limit lookups in each other table, however long the history.
// timecompleted >= afterTime gives the index its range; without it, the
// OR of the keyset condition leaves none, and the database walks the index
// from the oldest completion on every page.
func (q queries) page(afterTime, afterID int64, courses []int64, limit int) (string, []any) {
	var b strings.Builder
	fmt.Fprintf(&b, "(SELECT %s FROM %s\n  WHERE timecompleted >= ? AND (timecompleted > ? OR id > ?)", completionColumns, q.t("course_completions"))
	args := inCourses(&b, "course", []any{afterTime, afterTime, afterID}, courses)
	fmt.Fprintf(&b, "\n  ORDER BY timecompleted, id\n  LIMIT %d) cc", limit)
	head, headArgs := q.selectCompletions(b.String())
	return q.rebind(head), append(args, headArgs...)
}

// byIDs reads the completions with the given ids completed at or after
// from, by primary key.
func (q queries) byIDs(ids []int64, from int64) (string, []any) {
	head, args := q.selectCompletions(q.t("course_completions") + " cc")
	query := head + "\nWHERE cc.timecompleted >= ? AND cc.id IN (" + marks(len(ids)) + ")"
	args = append(args, from)
	for _, id := range ids {
		args = append(args, id)
	}
	return q.rebind(query), args
}

// eventCourseCompleted is the event Moodle logs when it marks a course
// complete, cron's back-dated aggregation included; its objectid is the
// course_completions id. Passed as an argument: in MariaDB and MySQL a
// backslash in a string literal is an escape.
const eventCourseCompleted = `\core\event\course_completed`

// completedLogged reads the completions whose course_completed event has a
// logstore_standard_log id in (afterLog, toLog], completed at or after
// from: the back-dated ones among them lie behind the cursor. The log is
// read by its primary key, then each completion by its own, so a poll reads
// the log rows written since the last one, not the completions. A
// completion logged twice comes twice (read keeps one).
func (q queries) completedLogged(afterLog, toLog, from int64, courses []int64) (string, []any) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s l\nLEFT JOIN %s cc ON cc.id = l.objectid", q.t("logstore_standard_log"), q.t("course_completions"))
	args := inCourses(&b, "cc.course", nil, courses)
	head, headArgs := q.selectCompletions(b.String())
	args = append(args, headArgs...)
	args = append(args, afterLog, toLog, eventCourseCompleted, from)
	return q.rebind(head + "\nWHERE l.id > ? AND l.id <= ? AND l.eventname = ? AND " + completedFrom + "\nORDER BY l.id"), args
}

// regraded reads the completions whose course total has a
// grade_grades_history id in (afterHist, toHist], completed at or after
// from. Moodle writes a history row for every change of a grade
// (aggregation of the course total included) unless grade history is
// disabled; the history is read by its primary key, the course item by
// its own, and the completion by Moodle's unique (userid, course) index.
// A completion regraded twice comes twice (read keeps one).
func (q queries) regraded(afterHist, toHist, from int64, courses []int64) (string, []any) {
	var b strings.Builder
	fmt.Fprintf(&b, `%s h
LEFT JOIN %s ri ON ri.id = h.itemid AND ri.itemtype = 'course'
LEFT JOIN %s cc ON cc.userid = h.userid AND cc.course = ri.courseid`,
		q.t("grade_grades_history"), q.t("grade_items"), q.t("course_completions"))
	args := inCourses(&b, "cc.course", nil, courses)
	head, headArgs := q.selectCompletions(b.String())
	args = append(args, headArgs...)
	args = append(args, afterHist, toHist, from)
	return q.rebind(head + "\nWHERE h.id > ? AND h.id <= ? AND " + completedFrom + "\nORDER BY h.id"), args
}

// completedFrom keeps the rows of a change scan that found a completion
// completed at or after its argument (never negative). The scans join the
// completions with LEFT JOIN, each by its key, and test them here, with
// COALESCE: a plain cc.timecompleted >= ? would let PostgreSQL turn the
// LEFT JOINs into inner joins, which it may make in either order, and use
// Moodle's index on timecompleted to read the whole lookback window once
// per new log or history row. Their ORDER BY on the log's or history's
// primary key does the same for the scan of the log or history itself:
// with full sorts off (planLookups), its range on the primary key is the
// one way to read them without a sort, even when the statistics make every
// index of a small or empty table look as cheap.
const completedFrom = "COALESCE(cc.timecompleted, -1) >= ?"

// lastIDs reads the highest id of the log and of the grade history.
func (q queries) lastIDs() string {
	return fmt.Sprintf("SELECT (SELECT COALESCE(MAX(id), 0) FROM %s) AS log, (SELECT COALESCE(MAX(id), 0) FROM %s) AS grades",
		q.t("logstore_standard_log"), q.t("grade_grades_history"))
}

// countSince counts the completions of users not deleted completed at or
// after from, of the given courses when courses is non-empty: what a first
// poll starting there reads.
func (q queries) countSince(from int64, courses []int64) (string, []any) {
	var b strings.Builder
	fmt.Fprintf(&b, `SELECT COUNT(*) FROM %s cc
JOIN %s u ON u.id = cc.userid
WHERE cc.timecompleted >= ? AND u.deleted = 0`, q.t("course_completions"), q.t("user"))
	args := inCourses(&b, "cc.course", []any{from}, courses)
	return q.rebind(b.String()), args
}

// inCourses adds a condition on the course column col when courses is
// non-empty.
func inCourses(b *strings.Builder, col string, args []any, courses []int64) []any {
	if len(courses) == 0 {
		return args
	}
	b.WriteString("\n  AND " + col + " IN (" + marks(len(courses)) + ")")
	for _, c := range courses {
		args = append(args, c)
	}
	return args
}

// courseIDs lists which of the given course ids exist.
func (q queries) courseIDs(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return q.rebind("SELECT id FROM " + q.t("course") + " WHERE id IN (" + marks(len(ids)) + ")"), args
}

// tables lists which of the named tables exist in the current schema.
func (q queries) tables(names []string) (string, []any) {
	schema := "current_schema()"
	if q.driver == driverMySQL {
		schema = "DATABASE()"
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	return q.rebind("SELECT table_name FROM information_schema.tables WHERE table_schema = " + schema +
		" AND table_name IN (" + marks(len(names)) + ")"), args
}

// probe selects the given columns of a table without reading a row, to
// check they exist and may be read.
func (q queries) probe(table string, columns []string) string {
	return "SELECT " + strings.Join(columns, ", ") + " FROM " + q.t(table) + " WHERE 1 = 0"
}

// profileField finds the custom profile field by short name.
func (q queries) profileField() string {
	return q.rebind("SELECT COUNT(*) FROM " + q.t("user_info_field") + " WHERE shortname = ?")
}

// coursesWithoutCode counts courses with completion enabled whose code
// field (idnumber or shortname) is empty.
func (q queries) coursesWithoutCode(field string) string {
	return "SELECT COUNT(*) FROM " + q.t("course") + " WHERE id <> 1 AND enablecompletion = 1 AND " + field + " = ''"
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
