package moodletest

import (
	"encoding/json"
	"strings"
)

// dispatch runs one web-service function. It is called with s.mu held.
func (s *Server) dispatch(tok Token, function string, p map[string]any) (any, *moodleError) {
	switch function {
	case "core_webservice_get_site_info":
		return s.siteInfo(tok), nil
	case "core_user_get_users_by_field":
		return s.usersByField(tok, str(p["field"]), list(p["values"]))
	case "core_user_create_users":
		return s.createUsers(tok, list(p["users"]))
	case "core_user_update_users":
		return s.updateUsers(list(p["users"]))
	case "core_course_get_courses_by_field":
		return s.coursesByField(tok, str(p["field"]), str(p["value"]))
	case "enrol_manual_enrol_users":
		return s.enrolUsers(list(p["enrolments"]))
	case "enrol_manual_unenrol_users":
		for _, e := range list(p["enrolments"]) {
			m, _ := e.(map[string]any)
			delete(s.enrolled, [2]int64{num(m["userid"]), num(m["courseid"])})
		}
		return nil, nil
	case "core_enrol_get_enrolled_users":
		return s.enrolledUsers(tok, num(p["courseid"]), list(p["options"]))
	case "core_completion_get_course_completion_status":
		return s.completionStatus(num(p["courseid"]), num(p["userid"]))
	case "gradereport_user_get_grade_items":
		return s.gradeItems(num(p["courseid"]), num(p["userid"]))
	}
	return nil, &moodleError{Exception: "dml_missing_record_exception", ErrorCode: "invalidrecord",
		Message: "Can't find data record in database table external_functions."}
}

// siteInfo answers core_webservice_get_site_info: the site, the token's
// user and the functions of the token's external service.
func (s *Server) siteInfo(tok Token) map[string]any {
	funcs := []map[string]any{}
	for _, f := range allFunctions {
		if tok.Functions == nil || contains(tok.Functions, f) {
			funcs = append(funcs, map[string]any{"name": f, "version": "2024100700"})
		}
	}
	userID := tok.UserID
	if userID == 0 {
		userID = 2
	}
	return map[string]any{
		"sitename": "Academy", "username": "cvbridge", "firstname": "Coachview", "lastname": "Bridge",
		"fullname": "Coachview Bridge", "lang": "nl", "userid": userID, "siteurl": s.URL,
		"userpictureurl": s.URL + "/theme/image.php/boost/core/1/u/f1", "functions": funcs,
		"downloadfiles": 0, "uploadfiles": 0, "release": "4.5 (Build: 20241007)", "version": "2024100700",
		"mobilecssurl": "", "advancedfeatures": []map[string]any{{"name": "usecomments", "value": 1}},
		"usercanmanageownfiles": true, "userquota": 104857600, "usermaxuploadfilesize": 104857600,
		"userhomepage": 1, "siteid": 1, "sitecalendartype": "gregorian", "usercalendartype": "gregorian",
		"userissiteadmin": false, "theme": "boost",
	}
}

var allFunctions = []string{
	"core_webservice_get_site_info", "core_user_get_users_by_field", "core_user_create_users",
	"core_user_update_users", "core_course_get_courses_by_field", "enrol_manual_enrol_users",
	"enrol_manual_unenrol_users", "core_enrol_get_enrolled_users",
	"core_completion_get_course_completion_status", "gradereport_user_get_grade_items",
}

// userJSON renders a user as Moodle does, leaving out what the token may not see.
func userJSON(tok Token, u *User) map[string]any {
	m := map[string]any{
		"id": u.ID, "username": u.Username, "firstname": u.FirstName, "lastname": u.LastName,
		"fullname": u.FirstName + " " + u.LastName, "email": u.Email, "auth": u.Auth, "suspended": false,
	}
	if u.MiddleName != "" {
		m["middlename"] = u.MiddleName
	}
	// Moodle shows a non-empty ID number to its own user or with moodle/user:viewalldetails.
	if (tok.ViewIDNumbers || u.ID == tok.UserID) && u.IDNumber != "" {
		m["idnumber"] = u.IDNumber
	}
	if len(u.Profile) > 0 {
		var cf []map[string]any
		for k, v := range u.Profile {
			cf = append(cf, map[string]any{"type": "text", "value": v, "displayvalue": v, "name": k, "shortname": k})
		}
		m["customfields"] = cf
	}
	return m
}

func (s *Server) usersByField(tok Token, field string, values []any) (any, *moodleError) {
	out := []map[string]any{}
	for _, v := range values {
		want := str(v)
		for _, u := range s.users {
			var have string
			switch field {
			case "id":
				have = jsonInt(u.ID)
			case "idnumber":
				if !tok.ViewIDNumbers {
					continue // silently dropped, as Moodle does
				}
				have = u.IDNumber
			case "username":
				have = u.Username
			case "email":
				have = u.Email
			default:
				return nil, fail("invalidparameter", "Invalid parameter value detected (field)")
			}
			if have == want {
				out = append(out, userJSON(tok, u))
			}
		}
	}
	return out, nil
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (s *Server) createUsers(tok Token, users []any) (any, *moodleError) {
	// One transaction: validate everything first.
	for _, e := range users {
		m, _ := e.(map[string]any)
		if str(m["username"]) == "" || str(m["firstname"]) == "" || str(m["lastname"]) == "" || str(m["email"]) == "" {
			return nil, fail("invalidparameter", "Invalid parameter value detected (missing required key)")
		}
		if str(m["username"]) != strings.ToLower(str(m["username"])) {
			return nil, fail("invalidparameter", "Invalid parameter value detected (username must be lowercase)")
		}
		if str(m["password"]) == "" && str(m["createpassword"]) != "1" {
			return nil, fail("invalidparameter", "Invalid parameter value detected (password or createpassword)")
		}
		for _, u := range s.users {
			if u.Username == str(m["username"]) {
				return nil, &moodleError{Exception: "invalid_parameter_exception", ErrorCode: "invalidparameter",
					Message: "Invalid parameter value detected (Username already exists: " + u.Username + ")"}
			}
			if strings.EqualFold(u.Email, str(m["email"])) {
				return nil, &moodleError{Exception: "invalid_parameter_exception", ErrorCode: "invalidparameter",
					Message: "Invalid parameter value detected (Email address already exists: " + u.Email + ")"}
			}
		}
	}
	out := []map[string]any{}
	for _, e := range users {
		m, _ := e.(map[string]any)
		u := &User{ID: s.nextUserID, Username: str(m["username"]), FirstName: str(m["firstname"]),
			MiddleName: str(m["middlename"]), LastName: str(m["lastname"]), Email: str(m["email"]),
			IDNumber: str(m["idnumber"]), Auth: str(m["auth"])}
		s.nextUserID++
		s.users = append(s.users, u)
		out = append(out, map[string]any{"id": u.ID, "username": u.Username})
	}
	return out, nil
}

func (s *Server) updateUsers(users []any) (any, *moodleError) {
	warnings := []map[string]any{}
	for _, e := range users {
		m, _ := e.(map[string]any)
		var target *User
		for _, u := range s.users {
			if u.ID == num(m["id"]) {
				target = u
			}
		}
		if target == nil {
			warnings = append(warnings, map[string]any{"item": "user", "itemid": num(m["id"]), "warningcode": "invaliduserid", "message": "Invalid user ID"})
			continue
		}
		if email, ok := m["email"]; ok {
			dup := false
			for _, u := range s.users {
				if u != target && strings.EqualFold(u.Email, str(email)) {
					dup = true
				}
			}
			if dup {
				warnings = append(warnings, map[string]any{"item": "user", "itemid": target.ID, "warningcode": "useremailduplicate", "message": "Duplicate email address"})
				continue
			}
			target.Email = str(email)
		}
		if v, ok := m["firstname"]; ok {
			target.FirstName = str(v)
		}
		if v, ok := m["lastname"]; ok {
			target.LastName = str(v)
		}
		if v, ok := m["middlename"]; ok {
			target.MiddleName = str(v)
		}
	}
	return map[string]any{"warnings": warnings}, nil
}

func (s *Server) coursesByField(tok Token, field, value string) (any, *moodleError) {
	out := []map[string]any{}
	for _, c := range s.courses {
		var match bool
		switch field {
		case "":
			match = true
		case "id":
			match = jsonInt(c.ID) == value
		case "ids":
			for _, id := range strings.Split(value, ",") {
				match = match || jsonInt(c.ID) == strings.TrimSpace(id)
			}
		case "shortname":
			match = c.ShortName == value
		case "idnumber":
			match = c.IDNumber == value && value != ""
		default:
			return nil, fail("invalidparameter", "Invalid parameter value detected (field)")
		}
		if !match {
			continue
		}
		m := map[string]any{"id": c.ID, "shortname": c.ShortName, "fullname": c.FullName, "enablecompletion": 1}
		if tok.CourseUpdate {
			m["idnumber"] = c.IDNumber
		}
		out = append(out, m)
	}
	return map[string]any{"courses": out, "warnings": []any{}}, nil
}

func (s *Server) course(id int64) *Course {
	for _, c := range s.courses {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (s *Server) enrolUsers(enrolments []any) (any, *moodleError) {
	for _, e := range enrolments {
		m, _ := e.(map[string]any)
		c := s.course(num(m["courseid"]))
		if c == nil {
			return nil, &moodleError{Exception: "dml_missing_record_exception", ErrorCode: "invalidrecord", Message: "Can't find data record in database table course."}
		}
		if c.NoManualEnrol {
			return nil, &moodleError{Exception: "moodle_exception", ErrorCode: "wsnoinstance",
				Message: "Manual enrolment plugin instance doesn't exist or is disabled for the course (id = " + jsonInt(c.ID) + ")"}
		}
		if num(m["roleid"]) == 0 {
			return nil, fail("invalidparameter", "Invalid parameter value detected (roleid)")
		}
		s.enrolled[[2]int64{num(m["userid"]), c.ID}] = num(m["roleid"])
	}
	return nil, nil
}

func (s *Server) enrolledUsers(tok Token, courseID int64, options []any) (any, *moodleError) {
	if s.course(courseID) == nil {
		return nil, &moodleError{Exception: "dml_missing_record_exception", ErrorCode: "invalidrecord", Message: "Can't find data record in database table course."}
	}
	from, limit := int64(0), int64(0)
	var fields []string
	for _, o := range options {
		m, _ := o.(map[string]any)
		switch str(m["name"]) {
		case "limitfrom":
			from = num(m["value"])
		case "limitnumber":
			limit = num(m["value"])
		case "userfields":
			for _, f := range strings.Split(str(m["value"]), ",") {
				fields = append(fields, strings.TrimSpace(f))
			}
		}
	}
	out := []map[string]any{}
	var n int64
	for _, u := range s.users {
		if _, ok := s.enrolled[[2]int64{u.ID, courseID}]; !ok {
			continue
		}
		if n >= from && (limit == 0 || n < from+limit) {
			out = append(out, onlyFields(userJSON(tok, u), fields))
		}
		n++
	}
	return out, nil
}

// onlyFields keeps the id and the named fields of a user, as the
// userfields option does; no names keep everything.
func onlyFields(user map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return user
	}
	out := map[string]any{"id": user["id"]}
	for _, f := range fields {
		if v, ok := user[f]; ok {
			out[f] = v
		}
	}
	return out
}

func (s *Server) completionStatus(courseID, userID int64) (any, *moodleError) {
	c := s.course(courseID)
	if c == nil {
		return nil, &moodleError{Exception: "dml_missing_record_exception", ErrorCode: "invalidrecord", Message: "Can't find data record in database table course."}
	}
	if _, ok := s.enrolled[[2]int64{userID, courseID}]; !ok {
		return nil, fail("usernotenroled", "User is not enrolled in this course")
	}
	if c.NoCriteria {
		return nil, fail("nocriteriaset", "No completion criteria set for this course")
	}
	p := s.progress[[2]int64{userID, courseID}]
	if p == nil {
		p = &Progress{CriteriaDone: []int64{0}}
	}
	var completions []map[string]any
	for i, t := range p.CriteriaDone {
		var tc any
		if t != 0 {
			tc = t
		}
		completions = append(completions, map[string]any{
			"type": 4, "title": "Activity completion", "status": map[bool]string{true: "Yes", false: "No"}[t != 0],
			"complete": t != 0, "timecompleted": tc, "details": map[string]any{"type": "Activity", "criteria": "Quiz " + jsonInt(int64(i+1)), "requirement": "Marking yourself complete", "status": ""},
		})
	}
	return map[string]any{"completionstatus": map[string]any{"completed": p.Completed, "aggregation": 1, "completions": completions}, "warnings": []any{}}, nil
}

func (s *Server) gradeItems(courseID, userID int64) (any, *moodleError) {
	p := s.progress[[2]int64{userID, courseID}]
	var raw any
	max := "100"
	if p != nil {
		if p.Grade != "" {
			raw = json.RawMessage(p.Grade)
		}
		if p.GradeMax != "" {
			max = p.GradeMax
		}
	}
	item := map[string]any{"id": 900 + courseID, "itemname": nil, "itemtype": "course", "itemmodule": nil,
		"iteminstance": courseID, "itemnumber": 0, "categoryid": 1, "graderaw": raw,
		"grademin": 0, "grademax": json.RawMessage(max), "gradeformatted": "-"}
	mod := map[string]any{"id": 800 + courseID, "itemname": "Quiz", "itemtype": "mod", "itemmodule": "quiz",
		"graderaw": 1, "grademin": 0, "grademax": 10}
	return map[string]any{"usergrades": []map[string]any{{
		"courseid": courseID, "userid": userID, "userfullname": "", "maxdepth": 2,
		"gradeitems": []map[string]any{mod, item},
	}}, "warnings": []any{}}, nil
}
