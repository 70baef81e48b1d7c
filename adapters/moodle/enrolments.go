package moodle

import (
	"context"
	"strings"

	"github.com/cvbridge/cvbridge/bridge/source"
)

// listKey is the cursor's key of an entry of the bridge's enrolment list:
// the person id in lower case (Coachview compares ids case-insensitively)
// and the Elearningcode.
func listKey(person, code string) string {
	return source.PersonKey(person) + "\t" + strings.TrimSpace(code)
}

// followList brings the watch list in line with the bridge's enrolment list
// and reports whether the cursor changed. Each entry is acted on once per
// change (its Ref), as the enroller's own tracking does:
//
//   - an entry the bridge enrolled is resolved to its Moodle user (by
//     person_field) and course (by course_field) and watched from now on,
//     checked at once unless it is watched already (a repeated enrolment
//     is checked again even if its completion was sent, as a repeated
//     Enrol is);
//   - an entry the bridge unenrolled is no longer watched.
//
// An entry is resolved from the watch list or the enroller's pending
// changes when they know its person and code, so following an enrolment
// this process made costs no call; otherwise Moodle is asked, a page of
// persons per call. An entry that cannot be resolved now (Moodle
// unreachable) is tried again at the next poll; one whose user or course
// Moodle does not know is logged and left until the bridge enrols the
// person anew.
func (m *Moodle) followList(ctx context.Context, cur *wsCursor, list []source.Enrolled, pending map[[2]int64]trackChange) bool {
	if m.enrollerReady() != nil {
		return false // without an enroller the list has no entries for this connection
	}
	changed := false
	follow := func(e source.Enrolled) {
		if cur.Listed == nil {
			cur.Listed = map[string]int64{}
		}
		cur.Listed[listKey(e.PersonID, e.ElearningCode)] = e.Ref
		changed = true
	}
	var todo []source.Enrolled
	unwatched := 0
	for _, e := range list {
		if ref, followed := cur.Listed[listKey(e.PersonID, e.ElearningCode)]; followed && ref == e.Ref {
			continue
		}
		if !e.Active {
			unwatched += cur.unwatch(e.PersonID, e.ElearningCode)
			follow(e)
			continue
		}
		todo = append(todo, e)
	}
	if unwatched > 0 {
		m.log.Info("no longer watching enrolments the bridge unenrolled", "enrolments", unwatched)
	}
	if len(todo) == 0 {
		return changed
	}
	idx := map[[2]int64]int{}
	known := map[string][2]int64{}
	for i, t := range cur.Enrolments {
		idx[t.key()] = i
		if t.Person != "" && t.Code != "" {
			known[listKey(t.Person, t.Code)] = t.key()
		}
	}
	for k, ch := range pending {
		if ch.add {
			known[listKey(ch.person, ch.course)] = k
		}
	}
	var ask []source.Enrolled
	for _, e := range todo {
		if _, ok := known[listKey(e.PersonID, e.ElearningCode)]; !ok {
			ask = append(ask, e)
		}
	}
	courses := m.listCourses(ctx, ask)
	users := m.listUsers(ctx, ask)
	added, retry := 0, 0
	for _, e := range todo {
		user, uok := users[source.PersonKey(e.PersonID)]
		course, cok := courses[strings.TrimSpace(e.ElearningCode)]
		if k, ok := known[listKey(e.PersonID, e.ElearningCode)]; ok {
			user, course, uok, cok = k[0], k[1], true, true
		}
		if !cok || !uok {
			retry++
			continue
		}
		follow(e)
		if course == 0 || user == 0 {
			m.log.Warn("an enrolment the bridge made is not in Moodle (user or course not found); it is not watched",
				"person", e.PersonID, "elearningcode", e.ElearningCode, "user_found", user != 0, "course_found", course != 0)
			continue
		}
		k := [2]int64{user, course}
		if _, watched := idx[k]; watched {
			continue // keeps its back-off
		}
		cur.unmarkDone(k)
		idx[k] = len(cur.Enrolments)
		cur.Enrolments = append(cur.Enrolments, tracked{User: user, Course: course,
			Person: strings.TrimSpace(e.PersonID), Code: strings.TrimSpace(e.ElearningCode)})
		added++
	}
	if added > 0 {
		m.log.Info("watching enrolments from the bridge's enrolment list", "added", added)
	}
	if retry > 0 {
		m.log.Warn("cannot look up enrolments of the bridge's enrolment list in Moodle now; trying again at the next poll", "enrolments", retry)
	}
	return changed
}

// unwatch removes the watched enrolments of person (case-insensitively) in
// code and returns how many it removed.
func (c *wsCursor) unwatch(person, code string) int {
	person, code = source.PersonKey(person), strings.TrimSpace(code)
	kept := c.Enrolments[:0]
	for _, t := range c.Enrolments {
		if source.PersonKey(t.Person) != person || t.Code != code {
			kept = append(kept, t)
		}
	}
	n := len(c.Enrolments) - len(kept)
	c.Enrolments = kept
	return n
}

// listCourses resolves the Elearningcodes of entries to Moodle course ids:
// 0 when Moodle has no such course (or several), absent when it could not
// be asked now.
func (m *Moodle) listCourses(ctx context.Context, entries []source.Enrolled) map[string]int64 {
	out := map[string]int64{}
	for _, e := range entries {
		code := strings.TrimSpace(e.ElearningCode)
		if _, done := out[code]; done {
			continue
		}
		id, err := m.findCourse(ctx, code)
		switch {
		case err == nil:
			out[code] = id
		case source.IsPermanent(err):
			out[code] = 0
		default:
			m.log.Warn("cannot find the Moodle course of an enrolment of the bridge's enrolment list", "elearningcode", code, "error", err)
		}
	}
	return out
}

// listUsers resolves the person ids of entries (by source.PersonKey) to Moodle user
// ids by person_field, a page of persons per call: 0 when no user (or more
// than one) has the id, absent when Moodle could not be asked now.
func (m *Moodle) listUsers(ctx context.Context, entries []source.Enrolled) map[string]int64 {
	var persons []string
	seen := map[string]bool{}
	for _, e := range entries {
		p := strings.TrimSpace(e.PersonID)
		if k := source.PersonKey(p); !seen[k] {
			seen[k] = true
			persons = append(persons, p)
		}
	}
	out := map[string]int64{}
	for start := 0; start < len(persons); start += m.settings.PageSize {
		page := persons[start:min(start+m.settings.PageSize, len(persons))]
		var users []wsUser
		if err := m.client.Call(ctx, fnUsersByField, map[string]any{"field": m.settings.PersonField, "values": page}, &users); err != nil {
			m.log.Warn("cannot find the Moodle users of enrolments of the bridge's enrolment list", "persons", len(page), "error", err)
			continue
		}
		found := map[string][]int64{}
		for _, u := range users {
			k := source.PersonKey(m.personID(u))
			found[k] = append(found[k], u.ID)
		}
		for _, p := range page {
			k := source.PersonKey(p)
			if ids := found[k]; len(ids) == 1 {
				out[k] = ids[0]
			} else {
				out[k] = 0
			}
		}
	}
	return out
}
