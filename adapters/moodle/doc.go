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
// them again, however old (but not before since), so fixing the user or
// course in Moodle sends them at the next poll.
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
// # Enrolments and restarts (webservice mode)
//
// The enroller has no store of its own: an enrolment is durable once a poll
// has committed it to the connection's cursor. Enrol returns when Moodle has
// accepted the enrolment, keeps it in memory and wakes the runner (the
// source is a source.Watcher), whose next poll, normally seconds later,
// commits it. The cursor also records every course the enroller enrolled
// anyone into. If the process stops before that poll (a crash, kill -9, or
// another daemon holding the connection's lease), the in-memory enrolment is
// lost, and recovered as follows: the first poll of every process, and then
// one poll per discover_every, reads the member lists of the courses the
// committed cursor records (core_enrol_get_enrolled_users, active members,
// only id and person field, page_size members per call) and watches every
// member with a person id that is neither watched nor already sent. So:
//
//   - an enrolment into a course the committed cursor records is watched
//     again at the first poll after the restart;
//   - an enrolment into a course nobody had been enrolled into through a
//     committed poll before is not recovered until Coachview sends it again
//     (Enrol is idempotent) or track_course_users is on;
//   - Moodle does not say who enrolled a member, so members of those courses
//     with a person id that a teacher enrolled are watched too, and their
//     completions are sent like the bridge's own.
//
// The member lists cost one call per page of members per recorded course,
// at most once per discover_every; a failure to read them is logged and
// does not stop the poll. An unenrolment lost this way is noticed when the
// enrolment's next check finds it gone. Database mode watches nothing: it
// reads every completion from the database.
//
// # History: since
//
// Without since, the first poll sends every completion Moodle holds, however
// old. Providers moving to the bridge with years of history should set
// since to the date from which Coachview is to receive results: completions
// before it are never sent, not on the first poll, not on later ones, not
// from the retry list (in webservice mode: completions whose date is before
// it are marked done unsent).
//
// # cvbridge check
//
// Check reports every problem it finds, each with what to fix. Database
// mode: the database answers; the tables exist with the prefix; the columns
// read may be read; the custom profile field exists (person_field
// profile:…); the courses table's course ids exist. Whenever url is set:
// the token is valid (core_webservice_get_site_info); each function this
// connection calls is allowed, a missing one named with the external-service
// setting and the capabilities it needs; the user named by check_username
// comes back with its person field, and searching by that field finds it
// (Moodle silently hides ID numbers from a token's user without
// moodle/user:viewalldetails); courses carry the course field (ID numbers
// need moodle/course:update; the courses table's ids exist).
//
// The database session is read-only: every connection is set to read-only
// transactions before use and every query runs in a read-only transaction,
// so neither a write nor DDL can reach Moodle's database, whatever rights
// the account has.
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
//	  since: ""                 # e.g. 2025-01-01: older completions are never sent (default: all history)
//	  # web services (webservice mode; in database mode they enable the enroller)
//	  url: https://learn.example.nl
//	  token_file: moodle.token  # or token_env: MOODLE_TOKEN (exactly one)
//	  concurrency: 2            # 1 to 4
//	  track_course_users: false
//	  discover_every: 1h        # member lists: recovering enrolments, track_course_users
//	  check_username: ""        # a user whose person field is filled in, for cvbridge check
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
