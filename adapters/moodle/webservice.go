package moodle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Web-service functions the adapter calls.
const (
	fnSiteInfo       = "core_webservice_get_site_info"
	fnUsersByField   = "core_user_get_users_by_field"
	fnCreateUsers    = "core_user_create_users"
	fnUpdateUsers    = "core_user_update_users"
	fnCoursesByField = "core_course_get_courses_by_field"
	fnEnrol          = "enrol_manual_enrol_users"
	fnUnenrol        = "enrol_manual_unenrol_users"
	fnEnrolledUsers  = "core_enrol_get_enrolled_users"
	fnCompletion     = "core_completion_get_course_completion_status"
	fnGradeItems     = "gradereport_user_get_grade_items"
)

// maxBackoff caps the wait between checks of an incomplete enrolment.
const maxBackoff = 24 * time.Hour

// wsCursor is the position of webservice mode, stored as JSON by the core.
// Moodle's web services cannot list completions since a time, so the cursor
// holds the enrolments to watch; each is checked when due, and an enrolment
// found incomplete waits twice as long as the time before (1h, 2h, 4h, …,
// at most a day). Done lists, per course, the users whose completion was
// sent, so that reading the course member lists does not add them again.
// Listed holds, per entry of the bridge's enrolment list that a poll has
// followed (listKey), the entry's Ref when it was followed, so an entry is
// resolved to its Moodle user and course once, and again only when the
// bridge enrols the person anew.
type wsCursor struct {
	Enrolments   []tracked         `json:"enrolments"`
	Done         map[int64][]int64 `json:"done,omitempty"`
	DiscoveredAt int64             `json:"discovered_at,omitempty"`
	Listed       map[string]int64  `json:"listed,omitempty"`
}

// tracked is one watched enrolment.
type tracked struct {
	User   int64  `json:"u"`
	Course int64  `json:"c"`
	Person string `json:"p,omitempty"` // PersoonExterneId when known
	Code   string `json:"e,omitempty"` // Elearningcode
	Checks int    `json:"n,omitempty"` // checks in a row that found it incomplete
	Next   int64  `json:"next,omitempty"`
}

func (t tracked) key() [2]int64 { return [2]int64{t.User, t.Course} }

// backoff is the wait after the n-th check in a row found an enrolment incomplete.
func backoff(n int) time.Duration {
	if n < 1 {
		return 0
	}
	if n > 6 {
		return maxBackoff
	}
	return min(time.Hour<<(n-1), maxBackoff)
}

func (c *wsCursor) isDone(k [2]int64) bool {
	for _, u := range c.Done[k[1]] {
		if u == k[0] {
			return true
		}
	}
	return false
}

func (c *wsCursor) markDone(k [2]int64) {
	if c.Done == nil {
		c.Done = map[int64][]int64{}
	}
	if !c.isDone(k) {
		c.Done[k[1]] = append(c.Done[k[1]], k[0])
	}
}

func (c *wsCursor) unmarkDone(k [2]int64) {
	users := c.Done[k[1]]
	for i, u := range users {
		if u == k[0] {
			c.Done[k[1]] = append(users[:i:i], users[i+1:]...)
			return
		}
	}
}

// track records an enrolment the enroller made or removed for the next
// poll, and asks for that poll at once. Only webservice mode watches
// enrolments; database mode reads every completion anyway.
func (m *Moodle) track(userID, courseID int64, person, code string, add bool) {
	if m.settings.Mode != modeWebService {
		return
	}
	m.trackMu.Lock()
	m.tracks[[2]int64{userID, courseID}] = trackChange{add: add, person: person, course: code}
	m.trackMu.Unlock()
	m.askPoll()
}

// outcome is what one check of an enrolment found.
type outcome struct {
	err        error // a failure of the call: the enrolment stays as it was
	gone       bool  // not enrolled any more
	incomplete bool
	problem    *problem
	skip       string // why Moodle hid something from the token (skip…), counted
	facts      facts
}

// pollWebService is one poll in webservice mode: it brings the watch list
// in the cursor up to date (the bridge's enrolment list, the enroller's
// changes, the course member lists when discovery is due), then checks the
// enrolments due now a page at a time, committing each page's completions
// with the cursor. The enroller's changes are forgotten once a commit stored
// them.
func (m *Moodle) pollWebService(ctx context.Context, sink source.Sink) error {
	cur, err := readWSCursor(ctx, sink)
	if err != nil {
		return err
	}
	now := m.clock.Now()
	changes := m.pendingTracks()
	// The bridge's enrolment list first, then what this process's enroller
	// did since the last commit, which is at least as new.
	list, dirty, err := m.followEnrolmentList(ctx, sink, &cur, changes)
	if err != nil {
		return err
	}
	skipped := map[string]int{}
	defer reportSkipped(sink, skipped)
	cur.applyTracks(changes)
	dirty = dirty || len(changes) > 0

	if m.settings.TrackCourseUsers && now.Sub(time.Unix(cur.DiscoveredAt, 0)) >= m.settings.DiscoverEvery {
		if err := m.discover(ctx, &cur, list, skipped); err != nil {
			return err
		}
		cur.DiscoveredAt = now.Unix()
		dirty = true
	}

	rep := newReporter()
	defer rep.log(m.log)
	stored, err := m.checkDue(ctx, sink, &cur, now, dirty, rep, skipped)
	if err != nil {
		return err
	}
	if stored {
		m.forgetTracks(changes)
	}
	return nil
}

// readWSCursor returns the webservice-mode cursor sink holds (empty before
// the first commit).
func readWSCursor(ctx context.Context, sink source.Sink) (wsCursor, error) {
	var cur wsCursor
	raw, err := sink.Cursor(ctx)
	if err != nil {
		return cur, err
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return cur, fmt.Errorf("moodle: stored cursor is not a webservice-mode cursor: %w", err)
		}
	}
	return cur, nil
}

// pendingTracks returns a copy of the enrolments the enroller made or
// removed that no commit has stored yet.
func (m *Moodle) pendingTracks() map[[2]int64]trackChange {
	m.trackMu.Lock()
	defer m.trackMu.Unlock()
	changes := make(map[[2]int64]trackChange, len(m.tracks))
	for k, v := range m.tracks {
		changes[k] = v
	}
	return changes
}

// forgetTracks drops the enroller's changes a commit stored, unless the
// enroller changed them again meanwhile.
func (m *Moodle) forgetTracks(stored map[[2]int64]trackChange) {
	m.trackMu.Lock()
	defer m.trackMu.Unlock()
	for k, ch := range stored {
		if m.tracks[k] == ch {
			delete(m.tracks, k)
		}
	}
}

// followEnrolmentList reads the bridge's enrolment list from sink and
// follows it in cur (followList). It returns the list and whether cur
// changed.
func (m *Moodle) followEnrolmentList(ctx context.Context, sink source.Sink, cur *wsCursor, changes map[[2]int64]trackChange) ([]source.Enrolled, bool, error) {
	list, err := sink.Enrolments(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("moodle: reading the bridge's enrolment list: %w", err)
	}
	return list, m.followList(ctx, cur, list, changes), nil
}

// reportSkipped tells sink what Moodle hid from the token during a poll, by
// capability, when it hid anything.
func reportSkipped(sink source.Sink, skipped map[string]int) {
	if len(skipped) > 0 {
		sink.ReportProblems(source.Problems{Skipped: skipped,
			Last: "Moodle hid data from the web-service token; the log names each course and the capability that fixes it"})
	}
}

// applyTracks watches the enrolments the enroller made, from their first
// check on, and stops watching those it removed.
func (c *wsCursor) applyTracks(changes map[[2]int64]trackChange) {
	idx := map[[2]int64]int{}
	for i, t := range c.Enrolments {
		idx[t.key()] = i
	}
	for k, ch := range changes {
		i, known := idx[k]
		switch {
		case !ch.add && known:
			c.Enrolments[i].User = 0 // removed below
		case ch.add && known:
			c.Enrolments[i] = tracked{User: k[0], Course: k[1], Person: ch.person, Code: ch.course}
			c.unmarkDone(k)
		case ch.add:
			idx[k] = len(c.Enrolments)
			c.Enrolments = append(c.Enrolments, tracked{User: k[0], Course: k[1], Person: ch.person, Code: ch.course})
			c.unmarkDone(k)
		}
	}
	c.Enrolments = removeZero(c.Enrolments)
}

// due returns the indices of the enrolments due for a check at now, the
// longest due first, then by course and user.
func (c *wsCursor) due(now time.Time) []int {
	var due []int
	for i, t := range c.Enrolments {
		if t.Next <= now.Unix() {
			due = append(due, i)
		}
	}
	sort.Slice(due, func(a, b int) bool {
		ta, tb := c.Enrolments[due[a]], c.Enrolments[due[b]]
		if ta.Next != tb.Next {
			return ta.Next < tb.Next
		}
		if ta.Course != tb.Course {
			return ta.Course < tb.Course
		}
		return ta.User < tb.User
	})
	return due
}

// checkDue checks the enrolments in cur due at now, a page at a time, and
// commits each page's completions with cur as it then stands; with dirty
// set, cur is committed even when nothing is due. It stops after the first
// page in which a call failed, returning that failure once the page is
// committed. stored tells whether any commit was stored (not a dry run).
func (m *Moodle) checkDue(ctx context.Context, sink source.Sink, cur *wsCursor, now time.Time, dirty bool, rep *reporter, skipped map[string]int) (stored bool, err error) {
	due := cur.due(now)
	for start := 0; start < len(due) || (start == 0 && dirty); start += m.settings.PageSize {
		page := due[start:min(start+m.settings.PageSize, len(due))]
		ready, callErr := m.checkPage(ctx, cur, page, now, rep, skipped)
		ok, err := commitPage(ctx, sink, *cur, ready)
		if err != nil {
			return stored, err
		}
		stored = stored || ok
		if callErr != nil {
			return stored, callErr
		}
	}
	return stored, nil
}

// checkPage checks the enrolments of cur at the indices in page and applies
// what each check found to it: one gone from Moodle or complete is no
// longer watched (a complete one is marked done), one incomplete or whose
// completion has a problem (reported to rep) is checked again after a
// longer wait, one whose call failed stays as it was. It returns the
// completions to send and the first failed call.
func (m *Moodle) checkPage(ctx context.Context, cur *wsCursor, page []int, now time.Time, rep *reporter, skipped map[string]int) ([]result.Completion, error) {
	outs := m.checkAll(ctx, cur.Enrolments, page)
	m.resolvePersons(ctx, outs)
	m.nameCourses(ctx, outs)
	undated := map[int64]int{}
	var (
		ready    []result.Completion
		firstErr error
	)
	for j, i := range page {
		o := outs[j]
		t := &cur.Enrolments[i]
		switch {
		case o.err != nil:
			if firstErr == nil {
				firstErr = o.err
			}
		case o.gone:
			m.log.Info("enrolment no longer in Moodle; no longer watched", "user_id", t.User, "course_id", t.Course)
			t.User = 0
		case o.incomplete:
			t.checkLater(now)
		default:
			comp, ok := m.completionOf(o, rep, skipped)
			if !ok {
				t.checkLater(now)
				continue
			}
			if comp.CompletedAt.IsZero() {
				undated[t.Course]++
			}
			if m.beforeSince(comp) {
				m.log.Debug("completion before since; not sent", "user_id", t.User, "course_id", t.Course)
			} else {
				ready = append(ready, comp)
			}
			cur.markDone(t.key())
			t.User = 0
		}
	}
	m.logUndated(undated, skipped)
	return ready, firstErr
}

// checkLater makes t due again after the next, longer wait (backoff).
func (t *tracked) checkLater(now time.Time) {
	t.Checks++
	t.Next = now.Add(backoff(t.Checks)).Unix()
}

// completionOf is the completion a check of a complete enrolment found. ok
// is false when its facts make none; the problem is then added to rep. What
// Moodle hid from the token is counted in skipped.
func (m *Moodle) completionOf(o outcome, rep *reporter, skipped map[string]int) (comp result.Completion, ok bool) {
	p := o.problem
	if p == nil {
		comp, p = m.settings.complete(o.facts, m.loc)
	}
	if o.skip != "" {
		skipped[o.skip]++
	}
	if p != nil && p.Subject == "user" && m.settings.profile == "" {
		p.Reason += " (or Moodle hides it from the token: moodle/user:viewalldetails)"
	}
	if p != nil {
		rep.add(*p)
		return result.Completion{}, false
	}
	return comp, true
}

// commitPage commits ready with cur, less the enrolments no longer watched,
// as the checkpoint. It reports whether the commit was stored (not a dry run).
func commitPage(ctx context.Context, sink source.Sink, cur wsCursor, ready []result.Completion) (bool, error) {
	cur.Enrolments = removeZero(cur.Enrolments)
	cp, err := json.Marshal(cur)
	if err != nil {
		return false, err
	}
	_, ok, err := commit(ctx, sink, source.Checkpoint{Cursor: cp}, func(add func(result.Completion) error) error {
		for _, c := range ready {
			if err := add(c); err != nil {
				return err
			}
		}
		return nil
	})
	return ok, err
}

// beforeSince reports whether c was completed before the since setting.
// A completion without a date is sent.
func (m *Moodle) beforeSince(c result.Completion) bool {
	return !m.settings.since.IsZero() && !c.CompletedAt.IsZero() && c.CompletedAt.Before(m.settings.since)
}

// removeZero drops entries marked removed (User 0), keeping the order.
func removeZero(ts []tracked) []tracked {
	out := make([]tracked, 0, len(ts))
	for _, t := range ts {
		if t.User != 0 {
			out = append(out, t)
		}
	}
	return out
}

// checkAll checks the enrolments at the given indices, at most
// Concurrency at once (the client enforces it too).
func (m *Moodle) checkAll(ctx context.Context, all []tracked, chunk []int) []outcome {
	outs := make([]outcome, len(chunk))
	work := make(chan int)
	var wg sync.WaitGroup
	for range m.settings.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				outs[j] = m.checkEnrolment(ctx, all[chunk[j]])
			}
		}()
	}
	for j := range chunk {
		work <- j
	}
	close(work)
	wg.Wait()
	return outs
}

// checkEnrolment asks Moodle whether one enrolment is complete and, if so,
// for its course total.
func (m *Moodle) checkEnrolment(ctx context.Context, t tracked) outcome {
	var status struct {
		CompletionStatus struct {
			Completed   bool        `json:"completed"`
			Aggregation int         `json:"aggregation"`
			Completions []criterion `json:"completions"`
		} `json:"completionstatus"`
	}
	err := m.client.Call(ctx, fnCompletion, map[string]any{"courseid": t.Course, "userid": t.User}, &status)
	switch ws.Code(err) {
	case "":
	case "usernotenroled":
		return outcome{gone: true}
	case "nocriteriaset":
		return outcome{problem: &problem{"course", t.Course, "has no completion criteria: set them under Course > Course completion"}}
	case "accessdenied":
		return outcome{skip: skipCompletionDenied, problem: &problem{"course", t.Course,
			"denies the token its learners' completions (accessdenied): the course is in separate groups mode; give the token's user moodle/site:accessallgroups"}}
	}
	if err != nil {
		return outcome{err: err}
	}
	if !status.CompletionStatus.Completed {
		return outcome{incomplete: true}
	}
	f := facts{UserID: t.User, CourseID: t.Course, PersonID: t.Person, Code: t.Code,
		SourceRef: fmt.Sprintf("moodle user %d course %d", t.User, t.Course)}
	f.CompletedAt = completedAt(status.CompletionStatus.Aggregation, status.CompletionStatus.Completions)
	if m.needsGrade() {
		var report gradeReport
		if err := m.client.Call(ctx, fnGradeItems, map[string]any{"courseid": t.Course, "userid": t.User}, &report); err != nil {
			return outcome{err: err}
		}
		g, hidden := report.courseTotal(t.User)
		if hidden {
			return outcome{skip: skipTotalHidden, problem: &problem{"course", t.Course,
				"hides its course total from the token (Moodle leaves hidden totals out of gradereport_user_get_grade_items): give the token's user moodle/grade:viewhidden"}}
		}
		f.Grade, f.GradeMax = g[0], g[1]
	}
	return outcome{facts: f}
}

// criterion is one completion criterion of core_completion_get_course_completion_status.
type criterion struct {
	Complete      bool        `json:"complete"`
	TimeCompleted json.Number `json:"timecompleted"`
}

// completedAt is when a complete course was completed, as far as the web
// services tell: with "all criteria" aggregation the last criterion's
// time, with "any criterion" the first's, zero when no criterion has a
// time (a course marked complete without its criteria). Moodle keeps the
// true time in course_completions.timecompleted, which only database mode
// reads; see the package documentation for where the two can differ.
func completedAt(aggregation int, cs []criterion) time.Time {
	var at int64
	for _, c := range cs {
		n, err := strconv.ParseInt(c.TimeCompleted.String(), 10, 64)
		if err != nil || n <= 0 || !c.Complete {
			continue
		}
		if at == 0 || (aggregation == aggregationAny && n < at) || (aggregation != aggregationAny && n > at) {
			at = n
		}
	}
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(at, 0)
}

// logUndated warns once per course of completions sent without a date
// and counts them.
func (m *Moodle) logUndated(undated map[int64]int, skipped map[string]int) {
	courses := make([]int64, 0, len(undated))
	for c := range undated {
		courses = append(courses, c)
	}
	sort.Slice(courses, func(i, j int) bool { return courses[i] < courses[j] })
	for _, c := range courses {
		skipped[skipNoDate] += undated[c]
		m.log.Warn("moodle course marked complete without a completed criterion: the web services give no completion date, so it is sent without Datum "+
			"(no capability gives it: database mode reads the date, or complete the course through its criteria)",
			"course_id", c, "completions", undated[c])
	}
}

// gradeReport is the answer of gradereport_user_get_grade_items.
type gradeReport struct {
	UserGrades []struct {
		UserID     int64 `json:"userid"`
		GradeItems []struct {
			ItemType string      `json:"itemtype"`
			GradeRaw json.Number `json:"graderaw"`
			GradeMax json.Number `json:"grademax"`
		} `json:"gradeitems"`
	} `json:"usergrades"`
}

// courseTotal returns the user's course total and its maximum as Moodle's
// number texts ("" when ungraded), and whether Moodle left the course total
// out (it does for a hidden total unless the token's user has
// moodle/grade:viewhidden).
func (r gradeReport) courseTotal(user int64) (g [2]string, hidden bool) {
	for _, ug := range r.UserGrades {
		if ug.UserID != user {
			continue
		}
		for _, gi := range ug.GradeItems {
			if gi.ItemType == "course" {
				if gi.GradeRaw == "" {
					return [2]string{}, false
				}
				return [2]string{gi.GradeRaw.String(), gi.GradeMax.String()}, false
			}
		}
		return [2]string{}, true
	}
	return [2]string{}, false
}

// wsUser is a user as the web services return it. Fields the token may not
// see are absent.
type wsUser struct {
	ID           int64  `json:"id"`
	Username     string `json:"username"`
	FirstName    string `json:"firstname"`
	MiddleName   string `json:"middlename"`
	LastName     string `json:"lastname"`
	Email        string `json:"email"`
	IDNumber     string `json:"idnumber"`
	CustomFields []struct {
		ShortName string `json:"shortname"`
		Value     string `json:"value"`
	} `json:"customfields"`
}

// personID returns the user's PersoonExterneId per person_field.
func (m *Moodle) personID(u wsUser) string {
	switch {
	case m.settings.profile != "":
		for _, f := range u.CustomFields {
			if f.ShortName == m.settings.profile {
				return strings.TrimSpace(f.Value)
			}
		}
		return ""
	case m.settings.PersonField == fieldUsername:
		return strings.TrimSpace(u.Username)
	case m.settings.PersonField == fieldEmail:
		return strings.TrimSpace(u.Email)
	}
	return strings.TrimSpace(u.IDNumber)
}

// resolvePersons fills in the person ids completed enrolments lack, with
// one call for all of them.
func (m *Moodle) resolvePersons(ctx context.Context, outs []outcome) {
	var ids []int64
	for _, o := range outs {
		if o.err == nil && !o.gone && !o.incomplete && o.problem == nil && o.facts.PersonID == "" {
			ids = append(ids, o.facts.UserID)
		}
	}
	if len(ids) == 0 {
		return
	}
	var users []wsUser
	values := make([]string, len(ids))
	for i, id := range ids {
		values[i] = strconv.FormatInt(id, 10)
	}
	if err := m.client.Call(ctx, fnUsersByField, map[string]any{"field": "id", "values": values}, &users); err != nil {
		for i := range outs {
			if outs[i].facts.PersonID == "" && outs[i].err == nil {
				outs[i].err = err
			}
		}
		return
	}
	byID := map[int64]string{}
	for _, u := range users {
		byID[u.ID] = m.personID(u)
	}
	for i := range outs {
		if outs[i].facts.PersonID == "" {
			outs[i].facts.PersonID = byID[outs[i].facts.UserID]
		}
	}
}

// nameCourses fills in the course names of completed enrolments when the
// remark template may use them, from what Moodle said of the courses
// before or with one call for the courses it has not.
func (m *Moodle) nameCourses(ctx context.Context, outs []outcome) {
	if m.settings.remark == nil {
		return
	}
	var ids []int64
	for _, o := range outs {
		if o.err == nil && !o.gone && !o.incomplete && o.problem == nil {
			ids = append(ids, o.facts.CourseID)
		}
	}
	if err := m.fetchCourses(ctx, ids); err != nil {
		for i := range outs {
			if outs[i].err == nil && !outs[i].gone && !outs[i].incomplete && outs[i].problem == nil {
				outs[i].err = err
			}
		}
		return
	}
	for i := range outs {
		if c, ok := m.courses.get(outs[i].facts.CourseID); ok {
			outs[i].facts.CourseName, outs[i].facts.ShortName = c.FullName, c.ShortName
		}
	}
}

// wsCourse is a course as core_course_get_courses_by_field returns it.
type wsCourse struct {
	ID        int64   `json:"id"`
	ShortName string  `json:"shortname"`
	FullName  string  `json:"fullname"`
	IDNumber  *string `json:"idnumber"`
	GroupMode int     `json:"groupmode"`
}

// mappedCourses returns the courses that have an Elearningcode, by id.
func (m *Moodle) mappedCourses(ctx context.Context) (map[int64]string, error) {
	if m.settings.CourseField == fieldCourses {
		return m.settings.codeOf, nil
	}
	var answer struct {
		Courses []wsCourse `json:"courses"`
	}
	if err := m.client.Call(ctx, fnCoursesByField, map[string]any{}, &answer); err != nil {
		return nil, err
	}
	m.courses.learn(answer.Courses)
	out := map[int64]string{}
	seenIDNumber := false
	for _, c := range answer.Courses {
		if c.ID == 1 {
			continue // the site
		}
		code := strings.TrimSpace(c.ShortName)
		if m.settings.CourseField == fieldIDNumber {
			code = ""
			if c.IDNumber != nil {
				seenIDNumber = true
				code = strings.TrimSpace(*c.IDNumber)
			}
		}
		if code != "" {
			out[c.ID] = code
		}
	}
	if m.settings.CourseField == fieldIDNumber && !seenIDNumber && len(answer.Courses) > 1 {
		return nil, &ws.Error{Function: fnCoursesByField, Kind: ws.Permanent, Err: errors.New(
			"Moodle returned courses without their ID number: the token's user needs moodle/course:update to see course ID numbers, or use course_field shortname or courses")}
	}
	return out, nil
}

// discover adds the users enrolled in the mapped courses to the watch
// list. A course in separate groups mode that lists no members is warned
// of and counted: Moodle hides its members from a token without
// moodle/site:accessallgroups. list is the bridge's enrolment list.
func (m *Moodle) discover(ctx context.Context, cur *wsCursor, list []source.Enrolled, skipped map[string]int) error {
	courses, err := m.mappedCourses(ctx)
	if err != nil {
		return err
	}
	added, empty, err := m.watchMembers(ctx, cur, courses)
	if err != nil {
		return err
	}
	if len(empty) > 0 {
		ids := make([]int64, 0, len(empty))
		for id := range empty {
			ids = append(ids, id)
		}
		if err := m.fetchCourses(ctx, ids); err != nil {
			return err
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			if c, _ := m.courses.get(id); c.GroupMode != groupsSeparate {
				continue
			}
			enrolled := 0
			for _, e := range list {
				if e.Active && strings.TrimSpace(e.ElearningCode) == courses[id] {
					enrolled++
				}
			}
			skipped[skipMembersHidden]++
			m.log.Warn("moodle course in separate groups mode lists no members to the token: its members' completions are not read; "+
				"give the token's user moodle/site:accessallgroups", "course_id", id, "elearningcode", courses[id], "bridge_enrolled", enrolled)
		}
	}
	m.log.Info("read the members of the mapped courses", "courses", len(courses), "added", added)
	return nil
}

// watchMembers adds the active members of the given courses (id →
// Elearningcode) to the watch list unless they are watched or sent
// already. It reads only the id and the person field of each member, a
// page at a time, and returns how many it added and the courses that
// listed no member.
func (m *Moodle) watchMembers(ctx context.Context, cur *wsCursor, courses map[int64]string) (int, map[int64]bool, error) {
	ids := make([]int64, 0, len(courses))
	for id := range courses {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	known := map[[2]int64]bool{}
	for _, t := range cur.Enrolments {
		known[t.key()] = true
	}
	added, empty := 0, map[int64]bool{}
	for _, course := range ids {
		for from := 0; ; from += m.settings.PageSize {
			var users []wsUser
			err := m.client.Call(ctx, fnEnrolledUsers, map[string]any{"courseid": course, "options": m.memberOptions(from)}, &users)
			if err != nil {
				return added, empty, fmt.Errorf("%w: %s", err, fixMembers(err))
			}
			if from == 0 && len(users) == 0 {
				empty[course] = true
			}
			for _, u := range users {
				k := [2]int64{u.ID, course}
				person := m.personID(u)
				if known[k] || cur.isDone(k) {
					continue
				}
				known[k] = true
				cur.Enrolments = append(cur.Enrolments, tracked{User: u.ID, Course: course, Person: person, Code: courses[course]})
				added++
			}
			if len(users) < m.settings.PageSize {
				break
			}
		}
	}
	return added, empty, nil
}

// memberFields is the userfields option of core_enrol_get_enrolled_users:
// the id and the person field only.
func (m *Moodle) memberFields() string {
	switch {
	case m.settings.profile != "":
		return "id,customfields"
	case m.settings.PersonField == fieldUsername:
		return "id,username"
	case m.settings.PersonField == fieldEmail:
		return "id,email"
	}
	return "id,idnumber"
}

// functionUse says, per web-service function, what the bridge uses it for
// and which capabilities the token's user needs for it.
var functionUse = map[string]struct{ why, caps string }{
	fnUsersByField:   {"to find learners by their person field", "moodle/user:viewdetails and moodle/user:viewalldetails (without it Moodle hides usernames and ID numbers)"},
	fnCreateUsers:    {"to create learners", "moodle/user:create"},
	fnUpdateUsers:    {"to update learners' names and e-mail", "moodle/user:update"},
	fnCoursesByField: {"to find courses by their Elearningcode", "moodle/course:view, and moodle/course:update to see course ID numbers"},
	fnEnrol:          {"to enrol learners", "enrol/manual:enrol and moodle/role:assign, in a role allowed to assign role_id (Define roles > Allow role assignments)"},
	fnUnenrol:        {"to unenrol learners", "enrol/manual:unenrol"},
	fnEnrolledUsers:  {"to read course member lists", "moodle/course:viewparticipants, moodle/course:enrolreview and, for courses in separate groups mode, moodle/site:accessallgroups"},
	fnCompletion:     {"to read course completions", "report/completion:view and moodle/course:view (and moodle/site:accessallgroups in separate-groups courses)"},
	fnGradeItems:     {"to read course totals", "gradereport/user:view, moodle/grade:viewall and moodle/grade:viewhidden (for hidden course totals)"},
}

// requiredFunctions lists the web-service functions this connection calls.
func (m *Moodle) requiredFunctions() []string {
	need := []string{fnUsersByField, fnCreateUsers, fnUpdateUsers, fnCoursesByField, fnEnrol, fnUnenrol}
	if m.settings.Mode == modeWebService {
		need = append(need, fnEnrolledUsers, fnCompletion)
		if m.settings.Result != resultNone || m.settings.Passed == passedThreshold || m.settings.remark != nil {
			need = append(need, fnGradeItems)
		}
	}
	return need
}

// checkWebService verifies the token, that its external service allows the
// functions this connection calls, and that the token's user sees the
// person and course fields. An invalid token ends the check; the other
// problems are all reported.
func (m *Moodle) checkWebService(ctx context.Context) ([]string, []error) {
	var info struct {
		SiteURL   string `json:"siteurl"`
		Release   string `json:"release"`
		UserID    int64  `json:"userid"`
		Functions []struct {
			Name string `json:"name"`
		} `json:"functions"`
	}
	if err := m.client.Call(ctx, fnSiteInfo, nil, &info); err != nil {
		return nil, []error{fmt.Errorf("moodle web services: %w", err)}
	}
	notes := []string{fmt.Sprintf("web services: token valid for Moodle %s at %s (token user id %d)", info.Release, info.SiteURL, info.UserID)}
	allowed := map[string]bool{}
	for _, f := range info.Functions {
		allowed[f.Name] = true
	}
	var problems []error
	need := m.requiredFunctions()
	for _, f := range need {
		if !allowed[f] {
			use := functionUse[f]
			problems = append(problems, fmt.Errorf(
				"moodle web services: function %s is not allowed for the token (the bridge needs it %s): add it to the token's external service "+
					"under Site administration > Server > Web services > External services > Functions; the token's user also needs %s",
				f, use.why, use.caps))
		}
	}
	if len(problems) == 0 {
		notes = append(notes, fmt.Sprintf("web services: all %d functions this connection calls are allowed", len(need)))
	}
	var checkUser int64
	if allowed[fnUsersByField] {
		n, p, id := m.checkPersonField(ctx)
		notes, problems, checkUser = append(notes, n...), append(problems, p...), id
	}
	if allowed[fnCoursesByField] {
		n, p := m.checkCourseField(ctx)
		notes, problems = append(notes, n...), append(problems, p...)
		if m.settings.Mode == modeWebService {
			n, p := m.checkPolling(ctx, allowed, checkUser)
			notes, problems = append(notes, n...), append(problems, p...)
		}
	}
	if allowed[fnEnrol] {
		notes = append(notes, fmt.Sprintf("enrolment: check cannot see whether the token's role may assign role_id %d (Moodle checks it only when enrolling, "+
			"answering wsusercannotassign): allow it under Site administration > Users > Permissions > Define roles > the token's role > Allow role assignments", m.settings.RoleID))
	}
	return notes, problems
}

// checkPersonField looks up the check_username user and checks that its
// person field comes back, and that searching by it finds the same user:
// without moodle/user:viewalldetails Moodle silently leaves usernames and
// ID numbers out and finds nobody by them. It returns the user's id when
// found.
func (m *Moodle) checkPersonField(ctx context.Context) ([]string, []error, int64) {
	notes, problems, u := m.checkPersonFieldOf(ctx)
	if u == nil {
		return notes, problems, 0
	}
	return notes, problems, u.ID
}

// hidesUsernames asks for user 2, Moodle's first administrator, by id:
// Moodle returns a user found by id without the username when the token's
// user lacks moodle/user:viewalldetails. It reports false when it cannot tell.
func (m *Moodle) hidesUsernames(ctx context.Context) bool {
	var users []wsUser
	if err := m.client.Call(ctx, fnUsersByField, map[string]any{"field": "id", "values": []string{"2"}}, &users); err != nil {
		return false
	}
	return len(users) == 1 && users[0].Username == ""
}

func (m *Moodle) checkPersonFieldOf(ctx context.Context) ([]string, []error, *wsUser) {
	field := m.settings.PersonField
	if m.settings.CheckUsername == "" {
		if field == fieldUsername {
			return nil, nil, nil
		}
		return []string{fmt.Sprintf("person_field %s: set check_username to the username of a Moodle user who has it filled in, "+
			"so that check can prove the token's user sees it (without moodle/user:viewalldetails Moodle silently finds nobody by ID number)", field)}, nil, nil
	}
	name := m.settings.CheckUsername
	var users []wsUser
	if err := m.client.Call(ctx, fnUsersByField, map[string]any{"field": fieldUsername, "values": []string{name}}, &users); err != nil {
		return nil, []error{fmt.Errorf("moodle web services: looking up check_username %q: %w", name, err)}, nil
	}
	if len(users) != 1 {
		if m.hidesUsernames(ctx) {
			return nil, []error{fmt.Errorf("moodle web services: check_username %q: Moodle hides usernames and ID numbers from the token's user, "+
				"so it finds nobody by them: give the token's user moodle/user:viewalldetails (without it the enroller cannot find learners and tries to create them again)", name)}, nil
		}
		return nil, []error{fmt.Errorf("moodle web services: check_username %q: no Moodle user has this username; name an existing user whose %s is filled in", name, field)}, nil
	}
	u := users[0]
	person := m.personID(u)
	if person == "" {
		var fix string
		switch {
		case m.settings.profile != "":
			fix = fmt.Sprintf("check that a custom profile field with short name %q exists (Site administration > Users > User profile fields), "+
				"is filled in for this user and is visible to the token's user", m.settings.profile)
		case field == fieldEmail:
			fix = "the token's user needs moodle/user:viewalldetails to see e-mail addresses, or the user has none"
		default:
			fix = "either the token's user cannot see ID numbers (give it moodle/user:viewalldetails: without it Moodle silently finds nobody " +
				"by ID number and the enroller tries to create learners who exist) or this user has no ID number (fill it in, or name another user in check_username)"
		}
		return nil, []error{fmt.Errorf("moodle web services: person_field %s: Moodle user %q (id %d) came back without its %s: %s", field, name, u.ID, field, fix)}, &u
	}
	if field != fieldIDNumber && field != fieldEmail {
		return []string{fmt.Sprintf("person_field %s: the token's user sees it (checked with user %q)", field, name)}, nil, &u
	}
	var found []wsUser
	if err := m.client.Call(ctx, fnUsersByField, map[string]any{"field": field, "values": []string{person}}, &found); err != nil {
		return nil, []error{fmt.Errorf("moodle web services: looking up check_username %q by %s: %w", name, field, err)}, &u
	}
	for _, f := range found {
		if f.ID == u.ID {
			return []string{fmt.Sprintf("person_field %s: the token's user sees it and finds users by it (checked with user %q)", field, name)}, nil, &u
		}
	}
	return nil, []error{fmt.Errorf("moodle web services: person_field %s: searching by the %s of user %q finds nobody: give the token's user moodle/user:viewalldetails",
		field, field, name)}, &u
}

// checkCourseField checks that courses carry the course field: the courses
// table's ids exist, or some course has an ID number (visible only with
// moodle/course:update) or short name.
func (m *Moodle) checkCourseField(ctx context.Context) ([]string, []error) {
	if m.settings.CourseField == fieldCourses {
		ids := make([]int64, 0, len(m.settings.codeOf))
		for id := range m.settings.codeOf {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		values := make([]string, len(ids))
		for i, id := range ids {
			values[i] = strconv.FormatInt(id, 10)
		}
		var answer struct {
			Courses []wsCourse `json:"courses"`
		}
		if err := m.client.Call(ctx, fnCoursesByField, map[string]any{"field": "ids", "value": strings.Join(values, ",")}, &answer); err != nil {
			return nil, []error{fmt.Errorf("moodle web services: reading the courses of the courses table: %w", err)}
		}
		have := map[int64]bool{}
		for _, c := range answer.Courses {
			have[c.ID] = true
		}
		var problems []error
		for _, id := range ids {
			if !have[id] {
				problems = append(problems, fmt.Errorf("moodle web services: courses: Elearningcode %s maps to Moodle course id %d, which does not exist or the token's user cannot see (moodle/course:view)",
					m.settings.codeOf[id], id))
			}
		}
		if len(problems) > 0 {
			return nil, problems
		}
		return []string{fmt.Sprintf("course_field courses: all %d courses of the courses table exist", len(ids))}, nil
	}
	courses, err := m.mappedCourses(ctx)
	if err != nil {
		return nil, []error{fmt.Errorf("course_field %s: %w", m.settings.CourseField, err)}
	}
	if len(courses) == 0 {
		return nil, []error{fmt.Errorf("moodle web services: course_field %s: no Moodle course has a %s to use as Elearningcode: fill it in under Course > Settings, or use course_field courses",
			m.settings.CourseField, m.settings.CourseField)}
	}
	return []string{fmt.Sprintf("course_field %s: %d courses have one", m.settings.CourseField, len(courses))}, nil
}
