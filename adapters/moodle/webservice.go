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
type wsCursor struct {
	Enrolments   []tracked         `json:"enrolments"`
	Done         map[int64][]int64 `json:"done,omitempty"`
	DiscoveredAt int64             `json:"discovered_at,omitempty"`
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

// track records an enrolment the enroller made or removed, for the next poll.
func (m *Moodle) track(userID, courseID int64, person, code string, add bool) {
	m.trackMu.Lock()
	defer m.trackMu.Unlock()
	m.tracks[[2]int64{userID, courseID}] = trackChange{add: add, person: person, course: code}
}

// outcome is what one check of an enrolment found.
type outcome struct {
	err        error // a failure of the call: the enrolment stays as it was
	gone       bool  // not enrolled any more
	incomplete bool
	problem    *problem
	facts      facts
}

func (m *Moodle) pollWebService(ctx context.Context, sink source.Sink) error {
	raw, err := sink.Cursor(ctx)
	if err != nil {
		return err
	}
	var cur wsCursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("moodle: stored cursor is not a webservice-mode cursor: %w", err)
		}
	}
	now := m.clock.Now()

	m.trackMu.Lock()
	changes := make(map[[2]int64]trackChange, len(m.tracks))
	for k, v := range m.tracks {
		changes[k] = v
	}
	m.trackMu.Unlock()
	idx := map[[2]int64]int{}
	for i, t := range cur.Enrolments {
		idx[t.key()] = i
	}
	for k, ch := range changes {
		i, known := idx[k]
		switch {
		case !ch.add && known:
			cur.Enrolments[i].User = 0 // removed below
		case ch.add && known:
			cur.Enrolments[i] = tracked{User: k[0], Course: k[1], Person: ch.person, Code: ch.course}
			cur.unmarkDone(k)
		case ch.add:
			idx[k] = len(cur.Enrolments)
			cur.Enrolments = append(cur.Enrolments, tracked{User: k[0], Course: k[1], Person: ch.person, Code: ch.course})
			cur.unmarkDone(k)
		}
	}
	cur.Enrolments = removeZero(cur.Enrolments)
	dirty := len(changes) > 0

	if m.settings.TrackCourseUsers && now.Sub(time.Unix(cur.DiscoveredAt, 0)) >= m.settings.DiscoverEvery {
		if err := m.discover(ctx, &cur); err != nil {
			return err
		}
		cur.DiscoveredAt = now.Unix()
		dirty = true
	}

	var due []int
	for i, t := range cur.Enrolments {
		if t.Next <= now.Unix() {
			due = append(due, i)
		}
	}
	sort.Slice(due, func(a, b int) bool {
		ta, tb := cur.Enrolments[due[a]], cur.Enrolments[due[b]]
		if ta.Next != tb.Next {
			return ta.Next < tb.Next
		}
		if ta.Course != tb.Course {
			return ta.Course < tb.Course
		}
		return ta.User < tb.User
	})

	rep := newReporter()
	defer rep.log(m.log)
	var firstErr error
	stored := false
	for start := 0; start < len(due) || (start == 0 && dirty); start += m.settings.PageSize {
		chunk := due[start:min(start+m.settings.PageSize, len(due))]
		outs := m.checkAll(ctx, cur.Enrolments, chunk)
		m.resolvePersons(ctx, outs)
		var ready []result.Completion
		for j, i := range chunk {
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
				t.Checks++
				t.Next = now.Add(backoff(t.Checks)).Unix()
			default:
				comp, p := result.Completion{}, o.problem
				if p == nil {
					comp, p = m.settings.complete(o.facts, m.loc)
				}
				if p != nil {
					rep.add(*p)
					t.Checks++
					t.Next = now.Add(backoff(t.Checks)).Unix()
					continue
				}
				ready = append(ready, comp)
				cur.markDone(t.key())
				t.User = 0
			}
		}
		next := cur
		next.Enrolments = removeZero(cur.Enrolments)
		cp, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, ok, err := commit(ctx, sink, source.Checkpoint{Cursor: cp}, func(add func(result.Completion) error) error {
			for _, c := range ready {
				if err := add(c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		stored = stored || ok
		if firstErr != nil {
			return firstErr
		}
	}
	if stored {
		m.trackMu.Lock()
		for k, ch := range changes {
			if m.tracks[k] == ch {
				delete(m.tracks, k)
			}
		}
		m.trackMu.Unlock()
	}
	return nil
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
			Completed   bool `json:"completed"`
			Completions []struct {
				TimeCompleted json.Number `json:"timecompleted"`
			} `json:"completions"`
		} `json:"completionstatus"`
	}
	err := m.client.Call(ctx, fnCompletion, map[string]any{"courseid": t.Course, "userid": t.User}, &status)
	switch ws.Code(err) {
	case "":
	case "usernotenroled":
		return outcome{gone: true}
	case "nocriteriaset":
		return outcome{problem: &problem{"course", t.Course, "has no completion criteria: set them under Course > Course completion"}}
	}
	if err != nil {
		return outcome{err: err}
	}
	if !status.CompletionStatus.Completed {
		return outcome{incomplete: true}
	}
	f := facts{UserID: t.User, CourseID: t.Course, PersonID: t.Person, Code: t.Code,
		SourceRef: fmt.Sprintf("moodle user %d course %d", t.User, t.Course)}
	var latest int64
	for _, c := range status.CompletionStatus.Completions {
		if n, err := strconv.ParseInt(c.TimeCompleted.String(), 10, 64); err == nil && n > latest {
			latest = n
		}
	}
	if latest > 0 {
		f.CompletedAt = time.Unix(latest, 0)
	}
	if m.settings.Result != resultNone || m.settings.Passed == passedThreshold || m.settings.remark != nil {
		g, err := m.courseGrade(ctx, t)
		if err != nil {
			return outcome{err: err}
		}
		f.Grade, f.GradeMax = g[0], g[1]
	}
	return outcome{facts: f}
}

// courseGrade returns the course total and its maximum as Moodle's number
// texts ("" when ungraded).
func (m *Moodle) courseGrade(ctx context.Context, t tracked) ([2]string, error) {
	var report struct {
		UserGrades []struct {
			UserID     int64 `json:"userid"`
			GradeItems []struct {
				ItemType string      `json:"itemtype"`
				GradeRaw json.Number `json:"graderaw"`
				GradeMax json.Number `json:"grademax"`
			} `json:"gradeitems"`
		} `json:"usergrades"`
	}
	if err := m.client.Call(ctx, fnGradeItems, map[string]any{"courseid": t.Course, "userid": t.User}, &report); err != nil {
		return [2]string{}, err
	}
	for _, ug := range report.UserGrades {
		if ug.UserID != t.User {
			continue
		}
		for _, gi := range ug.GradeItems {
			if gi.ItemType == "course" && gi.GradeRaw != "" {
				return [2]string{gi.GradeRaw.String(), gi.GradeMax.String()}, nil
			}
		}
	}
	return [2]string{}, nil
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

// wsCourse is a course as core_course_get_courses_by_field returns it.
type wsCourse struct {
	ID        int64   `json:"id"`
	ShortName string  `json:"shortname"`
	IDNumber  *string `json:"idnumber"`
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

// discover adds the users enrolled in the mapped courses to the watch list.
func (m *Moodle) discover(ctx context.Context, cur *wsCursor) error {
	courses, err := m.mappedCourses(ctx)
	if err != nil {
		return err
	}
	ids := make([]int64, 0, len(courses))
	for id := range courses {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	known := map[[2]int64]bool{}
	for _, t := range cur.Enrolments {
		known[t.key()] = true
	}
	added := 0
	for _, course := range ids {
		for from := 0; ; from += m.settings.PageSize {
			var users []wsUser
			err := m.client.Call(ctx, fnEnrolledUsers, map[string]any{"courseid": course, "options": []map[string]any{
				{"name": "onlyactive", "value": 1},
				{"name": "limitfrom", "value": from},
				{"name": "limitnumber", "value": m.settings.PageSize},
			}}, &users)
			if err != nil {
				return err
			}
			for _, u := range users {
				k := [2]int64{u.ID, course}
				if known[k] || cur.isDone(k) {
					continue
				}
				known[k] = true
				cur.Enrolments = append(cur.Enrolments, tracked{User: u.ID, Course: course, Person: m.personID(u), Code: courses[course]})
				added++
			}
			if len(users) < m.settings.PageSize {
				break
			}
		}
	}
	m.log.Info("read the members of the mapped courses", "courses", len(ids), "added", added)
	return nil
}

// checkWebService verifies the token and that its service allows the
// functions this connection calls.
func (m *Moodle) checkWebService(ctx context.Context) ([]string, error) {
	var info struct {
		Release   string `json:"release"`
		Functions []struct {
			Name string `json:"name"`
		} `json:"functions"`
	}
	if err := m.client.Call(ctx, fnSiteInfo, nil, &info); err != nil {
		return nil, err
	}
	allowed := map[string]bool{}
	for _, f := range info.Functions {
		allowed[f.Name] = true
	}
	need := []string{fnUsersByField, fnCreateUsers, fnUpdateUsers, fnCoursesByField, fnEnrol, fnUnenrol}
	if m.settings.Mode == modeWebService {
		need = append(need, fnCompletion)
		if m.settings.Result != resultNone || m.settings.Passed == passedThreshold || m.settings.remark != nil {
			need = append(need, fnGradeItems)
		}
		if m.settings.TrackCourseUsers {
			need = append(need, fnEnrolledUsers)
		}
	}
	var missing []string
	for _, f := range need {
		if !allowed[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("moodle web services: the token's external service lacks %s: add them under Site administration > Server > Web services > External services > Functions",
			strings.Join(missing, ", "))
	}
	notes := []string{fmt.Sprintf("web services: token valid (Moodle %s), all %d functions this connection calls are allowed", info.Release, len(need))}
	if m.settings.PersonField == fieldIDNumber {
		notes = append(notes, "person_field idnumber: the token's user needs moodle/user:viewalldetails; without it Moodle silently finds no user by ID number")
	}
	if m.settings.CourseField == fieldIDNumber {
		notes = append(notes, "course_field idnumber: the token's user needs moodle/course:update to see course ID numbers")
	}
	return notes, nil
}
