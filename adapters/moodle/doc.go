// Package moodle is the adapter for Moodle 4.1 LTS to 5.x, working from
// outside Moodle with either read-only database access or only a
// web-service token. It owns the mapping of Moodle's course completions and
// course totals to Coachview results, the watch list of enrolments in
// webservice mode, and the provisioning of learners (Enroller). The REST
// wire format is in the ws sub-package.
//
// Database mode reads course_completions keyset-paged on (timecompleted,
// id). Cron writes completions back-dated, so every poll reads again from
// the newest completion time minus lookback; enqueueing is idempotent, so
// rows read twice change nothing. Completions that cannot be sent (a user
// without a person id, a course without a code, no pass mark or grade when
// passed needs one) are logged once per poll by Moodle user or course id and
// kept in the cursor's retry list: they are not done, and every poll reads
// them again, however old, so fixing the user or course in Moodle sends them
// at the next poll. All queries run in read-only transactions.
//
// Webservice mode cannot ask Moodle for completions since a time. It
// watches the enrolments the enroller made (and, with track_course_users,
// the members of the mapped courses) and asks
// core_completion_get_course_completion_status for each when due; an
// enrolment found incomplete is asked again after 1h, 2h, 4h, … at most a
// day, so the calls per poll grow with the open enrolments only. The
// completion date is the latest criterion's completion time; the grade comes
// from gradereport_user_get_grade_items.
//
// The adapter's settings node, with the defaults (see Settings):
//
//	settings:
//	  mode: database            # required: database | webservice
//	  # database mode
//	  driver: postgres          # postgres | mysql (MariaDB too)
//	  dsn_file: moodle.dsn      # or dsn_env: MOODLE_DSN (exactly one)
//	  prefix: mdl_
//	  lookback: 72h
//	  page_size: 500
//	  # web services (webservice mode; in database mode they enable the enroller)
//	  url: https://learn.example.nl
//	  token_file: moodle.token  # or token_env: MOODLE_TOKEN (exactly one)
//	  concurrency: 2            # 1 to 4
//	  track_course_users: false
//	  discover_every: 1h
//	  # identity
//	  person_field: idnumber    # idnumber | username | email | profile:<shortname>
//	  course_field: idnumber    # idnumber | shortname | courses
//	  courses: {}               # Elearningcode: Moodle course id, with course_field: courses
//	  # result mapping
//	  passed: completion        # completion | gradepass (database mode) | threshold
//	  threshold: ""             # percent of the maximum grade, e.g. 55
//	  result: none              # decimal | text | none
//	  scale_max: 10             # decimal: grade/max × scale_max, rounded by the core
//	  text_format: "{percent}%" # text: {percent}, {grade}, {max}
//	  remark: ""                # text/template over RemarkData, e.g. "{{.CourseName}}"
//	  # enroller
//	  auth: manual
//	  role_id: 5
//	  name_split: dutch         # dutch: "van der Berg" as last name; none: tussenvoegsel in middlename
package moodle
