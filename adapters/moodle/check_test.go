package moodle

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/bridge/clock"
)

// checkSite is a stand-in Moodle with tokens for each way a check can fail.
func checkSite(t *testing.T) *moodletest.Server {
	t.Helper()
	all := []string{fnSiteInfo, fnUsersByField, fnCreateUsers, fnUpdateUsers, fnCoursesByField, fnEnrol, fnUnenrol,
		fnEnrolledUsers, fnCompletion, fnGradeItems}
	without := func(drop ...string) []string {
		var out []string
		for _, f := range all {
			keep := true
			for _, d := range drop {
				keep = keep && f != d
			}
			if keep {
				out = append(out, f)
			}
		}
		return out
	}
	site := moodletest.New(t, map[string]moodletest.Token{
		"full":       {ViewIDNumbers: true, CourseUpdate: true},
		"noidnum":    {CourseUpdate: true},
		"nocourseid": {ViewIDNumbers: true},
		// Its own user (id 10) sees its own ID number, as in Moodle.
		"self":      {UserID: 10, CourseUpdate: true},
		"noenrol":   {ViewIDNumbers: true, CourseUpdate: true, Functions: without(fnCreateUsers, fnEnrol)},
		"nomembers": {ViewIDNumbers: true, CourseUpdate: true, Functions: without(fnEnrolledUsers)},
		"nolookups": {ViewIDNumbers: true, CourseUpdate: true, Functions: without(fnUsersByField, fnCoursesByField)},
		"onlyinfo":  {Functions: []string{fnSiteInfo}},
	})
	site.AddUser(moodletest.User{ID: 10, Username: "anna", IDNumber: "P100", FirstName: "A", LastName: "J", Email: "anna@example.nl",
		Profile: map[string]string{"cvid": "CV-100"}})
	site.AddUser(moodletest.User{ID: 11, Username: "bram", FirstName: "B", LastName: "V", Email: "bram@example.nl"})
	site.AddCourse(moodletest.Course{ID: 1, ShortName: "site", FullName: "Academy"})
	site.AddCourse(moodletest.Course{ID: 2, ShortName: "vca", FullName: "Veiligheid", IDNumber: "E-VCA"})
	site.AddCourse(moodletest.Course{ID: 3, ShortName: "excel", FullName: "Excel"})
	return site
}

func TestWebServiceCheck(t *testing.T) {
	t.Parallel()
	site := checkSite(t)
	ctx := context.Background()

	t.Run("all well", func(t *testing.T) {
		t.Parallel()
		notes, err := wsSource(t, site, "full", "  check_username: anna\n  result: decimal\n", clock.System{}, nil).Check(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{
			"web services: token valid for Moodle 4.5 (Build: 20241007) at " + site.URL + " (token user id 2)",
			"web services: all 9 functions this connection calls are allowed",
			`person_field idnumber: the token's user sees it and finds users by it (checked with user "anna")`,
			"course_field idnumber: 1 courses have one",
			"completions: Moodle lets the token read completions in course E-VCA (id 2)",
			"grades: Moodle shows the token the course total in course E-VCA (id 2)",
			"enrolment: check cannot see whether the token's role may assign role_id 5 (Moodle checks it only when enrolling, answering wsusercannotassign): " +
				"allow it under Site administration > Users > Permissions > Define roles > the token's role > Allow role assignments",
		}, notes)
	})

	t.Run("without check_username a note says what check cannot prove", func(t *testing.T) {
		t.Parallel()
		notes, err := wsSource(t, site, "full", "", clock.System{}, nil).Check(ctx)
		require.NoError(t, err)
		assert.Contains(t, notes[2], "set check_username")
	})

	cases := []struct {
		name, token, settings string
		says                  []string
		notSays               []string
	}{
		{"invalid token", "wrong", "", []string{"invalidtoken", "token_file/token_env"}, nil},
		{"missing functions are each named with their fix", "noenrol", "  check_username: anna\n", []string{
			"2 problems",
			"function core_user_create_users is not allowed for the token (the bridge needs it to create learners)",
			"the token's user also needs moodle/user:create",
			"function enrol_manual_enrol_users is not allowed for the token (the bridge needs it to enrol learners)",
			"enrol/manual:enrol and moodle/role:assign",
			"External services > Functions",
		}, []string{"core_user_update_users"}},
		{"webservice mode needs the member lists", "nomembers", "", []string{
			"function core_enrol_get_enrolled_users is not allowed", "moodle/course:viewparticipants"}, nil},
		{"grade report only with a result", "onlyinfo", "", []string{"8 problems", "core_completion_get_course_completion_status"},
			[]string{"gradereport_user_get_grade_items"}},
		{"lookups not allowed skip the field checks", "nolookups", "  check_username: anna\n", []string{
			"2 problems", "function core_user_get_users_by_field", "function core_course_get_courses_by_field"},
			[]string{"check_username"}},
		{"idnumber not visible", "noidnum", "  check_username: anna\n", []string{
			`person_field idnumber: Moodle user "anna" (id 10) came back without its idnumber`,
			"moodle/user:viewalldetails", "silently finds nobody"}, nil},
		{"idnumber visible only to its own user", "self", "  check_username: anna\n", []string{
			`person_field idnumber: searching by the idnumber of user "anna" finds nobody: give the token's user moodle/user:viewalldetails`}, nil},
		{"check user without idnumber", "full", "  check_username: bram\n", []string{
			`Moodle user "bram" (id 11) came back without its idnumber`, "name another user in check_username"}, nil},
		{"unknown check user", "full", "  check_username: nobody\n", []string{
			`check_username "nobody": no Moodle user has this username`}, nil},
		{"profile field missing", "full", "  person_field: profile:phone\n  check_username: anna\n", []string{
			`came back without its profile:phone`, `custom profile field with short name "phone"`}, nil},
		{"course idnumber not visible", "nocourseid", "  check_username: anna\n", []string{
			"course_field idnumber", "moodle/course:update"}, nil},
		{"courses table names a missing course", "full", "  check_username: anna\n  course_field: courses\n  courses: {E-VCA: 2, E-OLD: 99}\n", []string{
			"Elearningcode E-OLD maps to Moodle course id 99, which does not exist"}, []string{"E-VCA maps"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := wsSource(t, site, tc.token, tc.settings, clock.System{}, nil).Check(ctx)
			require.Error(t, err)
			for _, s := range tc.says {
				assert.Contains(t, err.Error(), s)
			}
			for _, s := range tc.notSays {
				assert.NotContains(t, err.Error(), s)
			}
		})
	}

	t.Run("profile field and email visible", func(t *testing.T) {
		t.Parallel()
		for _, field := range []string{"profile:cvid", "email", "username"} {
			notes, err := wsSource(t, site, "full", "  person_field: "+field+"\n  check_username: anna\n", clock.System{}, nil).Check(ctx)
			require.NoError(t, err, field)
			assert.Contains(t, notes[2], "person_field "+field+": the token's user sees it")
		}
	})

	t.Run("web services off", func(t *testing.T) {
		t.Parallel()
		off := checkSite(t)
		off.SetWebServicesOff(true)
		_, err := wsSource(t, off, "full", "", clock.System{}, nil).Check(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Enable web services")
	})
}

func TestDatabaseCheck(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			_, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()
			cases := []struct {
				name, settings string
				says           []string
			}{
				{"wrong prefix", "  prefix: mo_\n", []string{"mo_course_completions", "$CFG->prefix"}},
				{"profile field missing", "  person_field: profile:nope\n", []string{`no custom profile field with short name "nope" in mdl_user_info_field`}},
				{"courses table names missing courses", "  course_field: courses\n  courses: {E-VCA: 2, E-OLD: 99, E-GONE: 98}\n", []string{
					"2 problems", "Elearningcode E-OLD maps to Moodle course id 99, which is not in mdl_course",
					"Elearningcode E-GONE maps to Moodle course id 98"}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					_, err := newDBSource(t, d.driver, dir, tc.settings, nil).Check(ctx)
					require.Error(t, err)
					for _, s := range tc.says {
						assert.Contains(t, err.Error(), s)
					}
				})
			}

			t.Run("all well", func(t *testing.T) {
				notes, err := newDBSource(t, d.driver, dir, "  person_field: profile:cvid\n  since: 2024-06-01\n", nil).Check(ctx)
				require.NoError(t, err)
				assert.Equal(t, []string{
					"1 courses with completion tracking have an empty idnumber: their completions wait until they have one (course_field)",
					"database: found the Moodle tables with prefix mdl_",
					"since 2024-06-01 would queue 7 completions on a first poll (without a cursor; fewer if users or courses lack their codes)",
					"since: completions before 2024-06-01T00:00:00+02:00 are never sent",
				}, notes)
			})

			t.Run("database and web services together", func(t *testing.T) {
				site := checkSite(t)
				require.NoError(t, os.WriteFile(filepath.Join(dir, "moodle.token"), []byte("noenrol\n"), 0o600))
				m := newDBSource(t, d.driver, dir, "  prefix: mo_\n  url: "+site.URL+"\n  token_file: moodle.token\n", nil)
				_, err := m.Check(ctx)
				require.Error(t, err)
				assert.Contains(t, err.Error(), "3 problems")
				assert.Contains(t, err.Error(), "mo_course_completions")
				assert.Contains(t, err.Error(), "function enrol_manual_enrol_users")
			})
		})
	}
}
