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
type completionRow struct {
	ID            int64          `db:"id"`
	UserID        int64          `db:"userid"`
	CourseID      int64          `db:"course"`
	TimeCompleted int64          `db:"timecompleted"`
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

// selectCompletions is the common head of the completion queries; its
// arguments (the profile field's short name) come first.
func (q queries) selectCompletions() (string, []any) {
	var args []any
	profileCol, profileJoin := "NULL", ""
	if q.profile != "" {
		profileCol = "pd.data"
		profileJoin = fmt.Sprintf(`
LEFT JOIN %[1]s pf ON pf.shortname = ?
LEFT JOIN %[2]s pd ON pd.fieldid = pf.id AND pd.userid = u.id`, q.t("user_info_field"), q.t("user_info_data"))
		args = append(args, q.profile)
	}
	return fmt.Sprintf(`SELECT cc.id, cc.userid, cc.course, cc.timecompleted,
  u.idnumber AS u_idnumber, u.username, u.email, %[1]s AS profile_value,
  c.idnumber AS c_idnumber, c.shortname, c.fullname,
  gi.id AS gi_id, gi.calculation, gi.grademax, gi.gradepass, gg.finalgrade, gg.rawgrademax
FROM %[2]s cc
JOIN %[3]s u ON u.id = cc.userid
JOIN %[4]s c ON c.id = cc.course%[5]s
LEFT JOIN %[6]s gi ON gi.courseid = cc.course AND gi.itemtype = 'course'
LEFT JOIN %[7]s gg ON gg.itemid = gi.id AND gg.userid = cc.userid
WHERE cc.timecompleted IS NOT NULL AND u.deleted = 0`,
		profileCol, q.t("course_completions"), q.t("user"), q.t("course"), profileJoin,
		q.t("grade_items"), q.t("grade_grades")), args
}

// page reads up to limit completions after (afterTime, afterID) in
// (timecompleted, id) order, only of the given courses when courses is
// non-empty. timecompleted >= afterTime gives the database a range on
// Moodle's index on timecompleted (mdl_courcomp_tim_ix): each page reads
// about limit index entries, however long the history behind it. Without
// it, the OR of the keyset condition leaves no range, and the database walks
// the index from the oldest completion on every page.
func (q queries) page(afterTime, afterID int64, courses []int64, limit int) (string, []any) {
	head, args := q.selectCompletions()
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("\n  AND cc.timecompleted >= ? AND (cc.timecompleted > ? OR cc.id > ?)")
	args = append(args, afterTime, afterTime, afterID)
	args = q.inCourses(&b, args, courses)
	fmt.Fprintf(&b, "\nORDER BY cc.timecompleted, cc.id\nLIMIT %d", limit)
	return q.rebind(b.String()), args
}

// byIDs reads the completions with the given ids completed at or after
// from, by primary key.
func (q queries) byIDs(ids []int64, from int64) (string, []any) {
	head, args := q.selectCompletions()
	query := head + "\n  AND cc.timecompleted >= ? AND cc.id IN (" + marks(len(ids)) + ")\nORDER BY cc.timecompleted, cc.id"
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
// read by its primary key, so a poll reads the log rows written since the
// last one, not the completions.
func (q queries) completedLogged(afterLog, toLog, from int64, courses []int64) (string, []any) {
	head, args := q.selectCompletions()
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, `
  AND cc.timecompleted >= ? AND cc.id IN (
    SELECT l.objectid FROM %s l
    WHERE l.id > ? AND l.id <= ? AND l.eventname = ?)`, q.t("logstore_standard_log"))
	args = append(args, from, afterLog, toLog, eventCourseCompleted)
	args = q.inCourses(&b, args, courses)
	b.WriteString("\nORDER BY cc.timecompleted, cc.id")
	return q.rebind(b.String()), args
}

// regraded reads the completions whose course total has a
// grade_grades_history id in (afterHist, toHist], completed at or after
// from. Moodle writes a history row for every change of a grade
// (aggregation of the course total included) unless grade history is
// disabled; the history is read by its primary key, the course item by
// its own, and the completion by Moodle's unique (userid, course) index.
func (q queries) regraded(afterHist, toHist, from int64, courses []int64) (string, []any) {
	head, args := q.selectCompletions()
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, `
  AND cc.timecompleted >= ? AND cc.id IN (
    SELECT rc.id FROM %s h
    JOIN %s ri ON ri.id = h.itemid AND ri.itemtype = 'course'
    JOIN %s rc ON rc.userid = h.userid AND rc.course = ri.courseid
    WHERE h.id > ? AND h.id <= ?)`, q.t("grade_grades_history"), q.t("grade_items"), q.t("course_completions"))
	args = append(args, from, afterHist, toHist)
	args = q.inCourses(&b, args, courses)
	b.WriteString("\nORDER BY cc.timecompleted, cc.id")
	return q.rebind(b.String()), args
}

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
	args := q.inCourses(&b, []any{from}, courses)
	return q.rebind(b.String()), args
}

// inCourses adds a condition on cc.course when courses is non-empty.
func (q queries) inCourses(b *strings.Builder, args []any, courses []int64) []any {
	if len(courses) == 0 {
		return args
	}
	b.WriteString("\n  AND cc.course IN (" + marks(len(courses)) + ")")
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
