package moodle

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
)

// Reasons webservice mode counts what Moodle hid from the token, reported
// to the core as source.Problems.Skipped (cvbridge_intake_skipped_total).
const (
	skipMembersHidden    = "members_hidden"    // a separate-groups course lists no members
	skipTotalHidden      = "total_hidden"      // the course total is left out of the grade report
	skipCompletionDenied = "completion_denied" // accessdenied on a learner's completion status
	skipNoDate           = "no_date"           // complete, but no criterion has a completion time
)

// groupsSeparate is Moodle's SEPARATEGROUPS course group mode.
const groupsSeparate = 1

// Moodle's aggregation of a course's completion criteria.
const aggregationAny = 2

// capabilityNames maps the names Moodle shows in a nopermissions message
// ("… permissions to do that (Review course enrolments).") to the
// capabilities the bridge's documentation lists.
var capabilityNames = map[string]string{
	"Review course enrolments":           "moodle/course:enrolreview",
	"View participants":                  "moodle/course:viewparticipants",
	"Access all groups":                  "moodle/site:accessallgroups",
	"View the user report":               "gradereport/user:view",
	"View grades of other users":         "moodle/grade:viewall",
	"View hidden grades":                 "moodle/grade:viewhidden",
	"View course completion report":      "report/completion:view",
	"Enrol users":                        "enrol/manual:enrol",
	"Unenrol users from the course":      "enrol/manual:unenrol",
	"Assign roles to users":              "moodle/role:assign",
	"Create users":                       "moodle/user:create",
	"Update user profiles":               "moodle/user:update",
	"View user profiles":                 "moodle/user:viewdetails",
	"View user full information":         "moodle/user:viewalldetails",
	"View courses without participation": "moodle/course:view",
}

var permissionText = regexp.MustCompile(`\(([^()]+)\)\.?$`)

// missingCapability names the capability a nopermissions error is about,
// by its Moodle name when the bridge knows it, else as Moodle wrote it.
func missingCapability(err error) string {
	var we *ws.Error
	if !errors.As(err, &we) || we.ErrorCode != "nopermissions" {
		return ""
	}
	m := permissionText.FindStringSubmatch(strings.TrimSpace(we.Message))
	if m == nil {
		return ""
	}
	if name, ok := capabilityNames[m[1]]; ok {
		return name
	}
	return fmt.Sprintf("the capability Moodle calls %q", m[1])
}

// courseCache keeps what core_course_get_courses_by_field said of courses
// (full name, group mode), for remarks and for telling why a member list
// is empty. Names changed in Moodle are seen after a restart.
type courseCache struct {
	mu   sync.Mutex
	byID map[int64]wsCourse
}

func (c *courseCache) learn(courses []wsCourse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[int64]wsCourse{}
	}
	for _, k := range courses {
		c.byID[k.ID] = k
	}
}

func (c *courseCache) get(id int64) (wsCourse, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byID[id]
	return k, ok
}

// fetchCourses asks Moodle, in one call, for the courses among ids it has
// not seen yet.
func (m *Moodle) fetchCourses(ctx context.Context, ids []int64) error {
	var missing []string
	seen := map[int64]bool{}
	for _, id := range ids {
		if _, ok := m.courses.get(id); !ok && !seen[id] {
			seen[id] = true
			missing = append(missing, fmt.Sprint(id))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	var answer struct {
		Courses []wsCourse `json:"courses"`
	}
	if err := m.client.Call(ctx, fnCoursesByField, map[string]any{"field": "ids", "value": strings.Join(missing, ",")}, &answer); err != nil {
		return err
	}
	m.courses.learn(answer.Courses)
	return nil
}

// memberOptions are the options of core_enrol_get_enrolled_users as the
// daemon sends them: active members only (which needs
// moodle/course:enrolreview), the id and person field, a page from from.
func (m *Moodle) memberOptions(from int) []map[string]any {
	return []map[string]any{
		{"name": "onlyactive", "value": 1},
		{"name": "userfields", "value": m.memberFields()},
		{"name": "limitfrom", "value": from},
		{"name": "limitnumber", "value": m.settings.PageSize},
	}
}

// checkPolling makes the calls a poll makes, with the parameters the
// daemon uses, on the lowest-numbered mapped course (and every mapped
// course in separate groups mode), with the check_username user (id
// userID, 0 when unknown): Moodle checks most capabilities only when a
// function is called, so an allowed function says little.
func (m *Moodle) checkPolling(ctx context.Context, allowed map[string]bool, userID int64) ([]string, []error) {
	courses, err := m.mappedCourses(ctx)
	if err != nil || len(courses) == 0 {
		return nil, nil // checkCourseField reports it
	}
	ids := make([]int64, 0, len(courses))
	for id := range courses {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if err := m.fetchCourses(ctx, ids); err != nil {
		return nil, []error{fmt.Errorf("moodle web services: reading the mapped courses: %w", err)}
	}
	first := ids[0]
	where := fmt.Sprintf("course %s (id %d)", courses[first], first)
	var notes []string
	var problems []error
	if m.settings.TrackCourseUsers && allowed[fnEnrolledUsers] {
		for _, id := range ids {
			c, _ := m.courses.get(id)
			if id != first && c.GroupMode != groupsSeparate {
				continue
			}
			var users []wsUser
			err := m.client.Call(ctx, fnEnrolledUsers, map[string]any{"courseid": id, "options": m.memberOptions(0)}, &users)
			switch {
			case err != nil:
				problems = append(problems, fmt.Errorf("moodle web services: %s with onlyactive=1 (as track_course_users reads member lists) on course %s (id %d): %w: %s",
					fnEnrolledUsers, courses[id], id, err, fixMembers(err)))
			case len(users) == 0 && c.GroupMode == groupsSeparate:
				problems = append(problems, fmt.Errorf("moodle web services: course %s (id %d) is in separate groups mode and Moodle lists none of its members to the token: "+
					"give the token's user moodle/site:accessallgroups, without which Moodle hides every member of such a course and track_course_users never sees its completions "+
					"(if the course has no active members yet, it will need it once it has)", courses[id], id))
			case len(users) > 0 && m.personID(users[0]) == "" && m.settings.profile == "":
				problems = append(problems, fmt.Errorf("moodle web services: course %s (id %d): Moodle lists members without their %s: "+
					"give the token's user moodle/user:viewalldetails (or the member has none)", courses[id], id, m.settings.PersonField))
			case id == first:
				notes = append(notes, fmt.Sprintf("track_course_users: Moodle lists the active members of %s to the token", where))
			}
		}
	}
	if userID == 0 {
		return notes, problems
	}
	if allowed[fnCompletion] {
		err := m.client.Call(ctx, fnCompletion, map[string]any{"courseid": first, "userid": userID}, nil)
		switch ws.Code(err) {
		case "", "usernotenroled", "nocriteriaset", "notenroled":
			notes = append(notes, fmt.Sprintf("completions: Moodle lets the token read completions in %s", where))
		default:
			problems = append(problems, fmt.Errorf("moodle web services: %s on %s for check_username %q: %w: the token's user needs report/completion:view "+
				"and moodle/course:view (and moodle/site:accessallgroups in separate-groups courses); without them no completion is read",
				fnCompletion, where, m.settings.CheckUsername, err))
		}
	}
	if allowed[fnGradeItems] && m.needsGrade() {
		var report gradeReport
		err := m.client.Call(ctx, fnGradeItems, map[string]any{"courseid": first, "userid": userID}, &report)
		_, hidden := report.courseTotal(userID)
		switch {
		case err != nil && ws.Code(err) != "notenrolled" && ws.Code(err) != "usernotenroled":
			capability := missingCapability(err)
			if capability == "" {
				capability = "gradereport/user:view and moodle/grade:viewall"
			}
			problems = append(problems, fmt.Errorf("moodle web services: %s on %s for check_username %q: %w: the token's user needs %s; without it no grade is read",
				fnGradeItems, where, m.settings.CheckUsername, err, capability))
		case err == nil && hidden:
			problems = append(problems, fmt.Errorf("moodle web services: %s: the course total of %s is hidden from the token: give the token's user moodle/grade:viewhidden, "+
				"without which Moodle leaves hidden course totals out and their completions wait for a grade", fnGradeItems, where))
		case err == nil:
			notes = append(notes, fmt.Sprintf("grades: Moodle shows the token the course total in %s", where))
		}
	}
	return notes, problems
}

// fixMembers says what a failed member-list call needs.
func fixMembers(err error) string {
	switch c := missingCapability(err); c {
	case "":
		return "the token's user needs moodle/course:viewparticipants and moodle/course:enrolreview"
	case "moodle/course:enrolreview":
		return "give the token's user moodle/course:enrolreview (Moodle asks for it for active members only); without it every poll fails"
	default:
		return "give the token's user " + c + "; without it every poll fails"
	}
}

// needsGrade reports whether completions need the course total.
func (m *Moodle) needsGrade() bool {
	return m.settings.Result != resultNone || m.settings.Passed == passedThreshold || m.settings.remark != nil
}
