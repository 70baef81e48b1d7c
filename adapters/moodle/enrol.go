package moodle

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// usernamePattern is what Moodle accepts as a username (without extended
// characters allowed).
var usernamePattern = regexp.MustCompile(`^[a-z0-9_.@-]+$`)

// Enrol finds or creates the person in Moodle (updating names and e-mail
// when they changed) and enrols them in the course the Elearningcode names
// with the manual enrolment method. In webservice mode the enrolment is
// watched from the next poll on, and a poll is asked for at once.
func (m *Moodle) Enrol(ctx context.Context, e source.Enrolment) error {
	if err := m.enrollerReady(); err != nil {
		return err
	}
	e.PersonID, e.ElearningCode = strings.TrimSpace(e.PersonID), strings.TrimSpace(e.ElearningCode)
	if e.PersonID == "" || e.ElearningCode == "" {
		return &source.PermanentError{Err: errors.New("PersoonExterneId and Elearningcode are required")}
	}
	courseID, err := m.findCourse(ctx, e.ElearningCode)
	if err != nil {
		return err
	}
	user, err := m.findUser(ctx, e.PersonID)
	if err != nil {
		return err
	}
	first, middle, last := m.names(e)
	var userID int64
	if user == nil {
		if userID, err = m.createUser(ctx, e, first, middle, last); err != nil {
			return err
		}
	} else {
		userID = user.ID
		if err := m.updateUser(ctx, *user, e.Email, first, middle, last); err != nil {
			return err
		}
	}
	err = m.client.Call(ctx, fnEnrol, map[string]any{"enrolments": []map[string]any{
		{"roleid": m.settings.RoleID, "userid": userID, "courseid": courseID},
	}}, nil)
	if ws.Code(err) == "wsnoinstance" {
		return &source.PermanentError{Err: fmt.Errorf(
			"enable the manual enrolment method in Moodle course %d (Elearningcode %s): Course > Participants > Enrolment methods > Manual enrolments: %w",
			courseID, e.ElearningCode, err)}
	}
	if ws.Code(err) == "wsusercannotassign" {
		return &source.PermanentError{Err: fmt.Errorf(
			"the token's role may not assign role_id %d in Moodle course %d (Elearningcode %s): allow it under Site administration > Users > Permissions > "+
				"Define roles > the token's role > Allow role assignments: %w", m.settings.RoleID, courseID, e.ElearningCode, err)}
	}
	if err != nil {
		return classify("enrolling in Moodle course "+fmt.Sprint(courseID), err)
	}
	m.track(userID, courseID, e.PersonID, e.ElearningCode, true)
	m.log.Info("enrolled", "elearningcode", e.ElearningCode, "user_id", userID, "course_id", courseID)
	return nil
}

// Unenrol removes the person's manual enrolment in the course. The Moodle
// user is never deleted; an unknown person is not enrolled, so nothing happens.
func (m *Moodle) Unenrol(ctx context.Context, personID, elearningCode string) error {
	if err := m.enrollerReady(); err != nil {
		return err
	}
	courseID, err := m.findCourse(ctx, strings.TrimSpace(elearningCode))
	if err != nil {
		return err
	}
	user, err := m.findUser(ctx, strings.TrimSpace(personID))
	if err != nil || user == nil {
		return err
	}
	err = m.client.Call(ctx, fnUnenrol, map[string]any{"enrolments": []map[string]any{
		{"userid": user.ID, "courseid": courseID},
	}}, nil)
	if err != nil {
		return classify("unenrolling from Moodle course "+fmt.Sprint(courseID), err)
	}
	m.track(user.ID, courseID, "", "", false)
	m.log.Info("unenrolled", "elearningcode", elearningCode, "user_id", user.ID, "course_id", courseID)
	return nil
}

func (m *Moodle) enrollerReady() error {
	if m.client == nil {
		return &source.PermanentError{Err: errNoEnroller}
	}
	if m.settings.profile != "" {
		return &source.PermanentError{Err: fmt.Errorf(
			"person_field %s: Moodle's web services cannot find users by a custom profile field; use idnumber, username or email to let the bridge enrol",
			m.settings.PersonField)}
	}
	return nil
}

// classify wraps a web-service error: permanent ones become
// source.PermanentError, the rest stay transient.
func classify(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	if ws.IsPermanent(err) {
		return &source.PermanentError{Err: err}
	}
	return err
}

// findCourse returns the Moodle course id for an Elearningcode.
func (m *Moodle) findCourse(ctx context.Context, code string) (int64, error) {
	if m.settings.CourseField == fieldCourses {
		id, ok := m.settings.Courses[code]
		if !ok {
			return 0, &source.PermanentError{Err: fmt.Errorf("e-learning code %s is not in this connection's courses table: add it with its Moodle course id", code)}
		}
		return id, nil
	}
	var answer struct {
		Courses []wsCourse `json:"courses"`
	}
	if err := m.client.Call(ctx, fnCoursesByField, map[string]any{"field": m.settings.CourseField, "value": code}, &answer); err != nil {
		return 0, classify("finding the Moodle course", err)
	}
	switch len(answer.Courses) {
	case 1:
		return answer.Courses[0].ID, nil
	case 0:
		return 0, &source.PermanentError{Err: fmt.Errorf("no Moodle course has %s %s: set it on the course in Moodle (Course > Settings)", m.settings.CourseField, code)}
	}
	return 0, &source.PermanentError{Err: fmt.Errorf("%d Moodle courses have %s %s: make it unique", len(answer.Courses), m.settings.CourseField, code)}
}

// findUser returns the Moodle user whose identity field holds personID, or nil.
func (m *Moodle) findUser(ctx context.Context, personID string) (*wsUser, error) {
	var users []wsUser
	err := m.client.Call(ctx, fnUsersByField, map[string]any{"field": m.settings.PersonField, "values": []string{personID}}, &users)
	if err != nil {
		return nil, classify("finding the Moodle user", err)
	}
	switch len(users) {
	case 0:
		return nil, nil
	case 1:
		return &users[0], nil
	}
	return nil, &source.PermanentError{Err: fmt.Errorf("%d Moodle users have this %s: merge or change them so it is unique", len(users), m.settings.PersonField)}
}

// names splits a Coachview name into Moodle's first, middle and last name.
func (m *Moodle) names(e source.Enrolment) (first, middle, last string) {
	first, last = strings.TrimSpace(e.FirstName), strings.TrimSpace(e.LastName)
	infix := strings.Join(strings.Fields(e.Infix), " ")
	if infix == "" {
		return first, "", last
	}
	if m.settings.NameSplit == splitDutch {
		return first, "", infix + " " + last
	}
	return first, infix, last
}

// username is the username of a user the bridge creates: the person id, or
// the e-mail address when e-mail is the identity, in lower case.
func (m *Moodle) username(e source.Enrolment) string {
	if m.settings.PersonField == fieldEmail {
		return strings.ToLower(strings.TrimSpace(e.Email))
	}
	return strings.ToLower(e.PersonID)
}

func (m *Moodle) createUser(ctx context.Context, e source.Enrolment, first, middle, last string) (int64, error) {
	if first == "" || last == "" || strings.TrimSpace(e.Email) == "" {
		return 0, &source.PermanentError{Err: errors.New("Moodle needs a first name, last name and e-mail address to create the user: fill them in on the person in Coachview")}
	}
	username := m.username(e)
	if !usernamePattern.MatchString(username) {
		return 0, &source.PermanentError{Err: fmt.Errorf(
			"%s cannot be a Moodle username (only a-z, 0-9, _ . @ -): use person_field email or create the user in Moodle", m.settings.PersonField)}
	}
	u := map[string]any{
		"username": username, "firstname": first, "lastname": last, "email": strings.TrimSpace(e.Email),
		"auth": m.settings.Auth, "createpassword": 1,
	}
	if middle != "" {
		u["middlename"] = middle
	}
	if m.settings.PersonField == fieldIDNumber {
		u["idnumber"] = e.PersonID
	}
	var created []struct {
		ID int64 `json:"id"`
	}
	err := m.client.Call(ctx, fnCreateUsers, map[string]any{"users": []map[string]any{u}}, &created)
	if err != nil {
		var we *ws.Error
		msg := ""
		if errors.As(err, &we) {
			msg = strings.ToLower(we.Message)
		}
		switch {
		case strings.Contains(msg, "username already exists") && m.settings.PersonField == fieldIDNumber:
			return 0, &source.PermanentError{Err: fmt.Errorf(
				"Moodle already has a user with username %s, but the token found none with this ID number: either the token's user cannot see ID numbers "+
					"(give it moodle/user:viewalldetails; Moodle then silently finds nobody) or that Moodle user lacks the ID number (fill it in): %w", username, err)}
		case strings.Contains(msg, "username already exists"):
			return 0, &source.PermanentError{Err: fmt.Errorf("Moodle already has a user with username %s: %w", username, err)}
		case strings.Contains(msg, "email address already exists"):
			// Moodle's own message quotes the address; the reason is logged
			// and kept after the person's data is erased, so it is left out.
			return 0, &source.PermanentError{Err: fmt.Errorf(
				"another Moodle user already has this e-mail address: give that user the %s, or allow accounts with the same e-mail (allowaccountssameemail)",
				m.settings.PersonField)}
		}
		return 0, classify("creating the Moodle user", err)
	}
	if len(created) != 1 || created[0].ID == 0 {
		return 0, fmt.Errorf("creating the Moodle user: Moodle answered %d users instead of one", len(created))
	}
	m.log.Info("created Moodle user", "user_id", created[0].ID)
	return created[0].ID, nil
}

func (m *Moodle) updateUser(ctx context.Context, u wsUser, email, first, middle, last string) error {
	change := map[string]any{}
	if first != "" && first != u.FirstName {
		change["firstname"] = first
	}
	if last != "" && last != u.LastName {
		change["lastname"] = last
	}
	if m.settings.NameSplit == splitNone && middle != u.MiddleName {
		change["middlename"] = middle
	}
	email = strings.TrimSpace(email)
	if email != "" && !strings.EqualFold(email, u.Email) && m.settings.PersonField != fieldEmail {
		change["email"] = email
	}
	if len(change) == 0 {
		return nil
	}
	change["id"] = u.ID
	var answer struct {
		Warnings []struct {
			WarningCode string `json:"warningcode"`
			Message     string `json:"message"`
		} `json:"warnings"`
	}
	// Before Moodle 4.0 the answer is null, which leaves answer empty.
	if err := m.client.Call(ctx, fnUpdateUsers, map[string]any{"users": []map[string]any{change}}, &answer); err != nil {
		return classify(fmt.Sprintf("updating Moodle user %d", u.ID), err)
	}
	// Moodle turns the failure to update a user into one warning for that
	// user, and one user was sent: a warning means it was not updated.
	if len(answer.Warnings) > 0 {
		w := answer.Warnings[0]
		if w.WarningCode == "useremailduplicate" {
			return &source.PermanentError{Err: fmt.Errorf(
				"updating Moodle user %d: another Moodle user already has the new e-mail address; allow accounts with the same e-mail (allowaccountssameemail) or correct it", u.ID)}
		}
		return &source.PermanentError{Err: fmt.Errorf("updating Moodle user %d: Moodle warned %s: %s", u.ID, w.WarningCode, w.Message)}
	}
	m.log.Info("updated Moodle user", "user_id", u.ID, "fields", len(change)-1)
	return nil
}
