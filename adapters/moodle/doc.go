// Package moodle is the adapter for Moodle 4.1 LTS to 5.x, working from
// outside Moodle with either read-only database access or only a
// web-service token. It owns the mapping of Moodle's course completions and
// course totals to Coachview results, the watch list of enrolments in
// webservice mode, and the provisioning of learners (Enroller). The REST
// wire format is in the ws sub-package.
//
// Database mode reads course_completions keyset-paged on (timecompleted,
// id) from its cursor, each page bounded below on Moodle's own index on
// timecompleted (mdl_courcomp_tim_ix), so a poll reads what is new, not the
// history. A page is chosen from course_completions alone; then each of its
// completions' user, course and course total is looked up by key, in the
// order the query is written (STRAIGHT_JOIN on MariaDB and MySQL, planner
// settings for the transaction on PostgreSQL: planLookups), so the rows a
// poll reads follow the completions it reads, whatever the planner's
// statistics say. Cron writes completions back-dated, and course totals are
// regraded after a completion was sent: with changes: log (the default)
// each poll reads only the rows written since the previous poll in
// logstore_standard_log (course_completed events) and grade_grades_history
// (changes of a course total), by primary key, and sends again the
// completions they name that lie within lookback of the newest; with
// changes: window (a Moodle without the standard log store or with grade
// history disabled) it reads the whole lookback window again instead.
// Enqueueing is idempotent, so rows read twice change nothing. See dbCursor
// for the details. Completions that cannot be sent (a user
// without a person id, a course without a code, no pass mark or grade when
// passed needs one) are logged once per poll by Moodle user or course id and
// kept in the cursor's retry list: they are not done, and every poll reads
// them again, however old (but not before since), so fixing the user or
// course in Moodle sends them at the next poll.
//
// Webservice mode cannot ask Moodle for completions since a time. It
// watches the enrolments in the bridge's enrolment list (and, with
// track_course_users, the members of the mapped courses) and asks
// core_completion_get_course_completion_status for each when due; an
// enrolment found incomplete is asked again after 1h, 2h, 4h, … at most a
// day, so the calls per poll grow with the open enrolments only. The grade
// comes from gradereport_user_get_grade_items, the course name for remark
// templates from core_course_get_courses_by_field (once per course while
// the daemon runs).
//
// The web services give no course completion time, only the criteria's. The
// completion date follows the course's aggregation: "all criteria" the last
// criterion's time, "any criterion" the first completed one's. Database
// mode reads course_completions.timecompleted, which Moodle's cron sets to
// the latest criterion completed when it aggregates; the two modes differ
// when, with "any", several criteria were completed before cron ran (the
// database has the later), and when an activity or role group has its own
// "any" aggregation (not visible to web services; all its criteria count).
// A course marked complete without a completed criterion (by an
// administrator, a restore or an upload) has no date in webservice mode:
// it is sent without Datum, warned of per course and counted (no_date).
//
// # Capabilities (webservice mode and the enroller)
//
// Give the token's user a role at system level with these capabilities, and
// webservice/rest:use; Manager has all but the last. Moodle checks most of
// them only when a function is called, so cvbridge check calls each
// function the daemon calls, with its parameters, and names what is missing.
//
//	feature                 capability                        without it
//	any call                webservice/rest:use               accessexception
//	                        moodle/course:view                requireloginerror on courses the user is not enrolled in
//	finding learners        moodle/user:viewdetails           users not returned
//	                        moodle/user:viewalldetails        usernames and ID numbers hidden: nobody found by them, learners created twice
//	                        moodle/course:useremail           e-mail hidden (person_field email)
//	finding courses         moodle/course:update              course ID numbers hidden (course_field idnumber)
//	results                 report/completion:view            cannotviewreport: no completion read
//	                        gradereport/user:view             nopermissions: no grade read
//	                        moodle/grade:viewall              nopermissions: no grade read
//	hidden course totals    moodle/grade:viewhidden           total left out: completion held, warned (total_hidden)
//	member discovery        moodle/course:viewparticipants    nopermissions: every poll fails
//	(track_course_users)    moodle/course:enrolreview         nopermissions (Review course enrolments): every poll fails
//	groups                  moodle/site:accessallgroups       separate-groups course lists no members (members_hidden),
//	                                                          completions denied (completion_denied)
//	enrolment               moodle/user:create, moodle/user:update, enrol/manual:enrol, enrol/manual:unenrol
//	role assignment         moodle/role:assign, and the role   wsusercannotassign: check cannot see it;
//	                        allowed to assign role_id          the enrolment fails permanently naming the setting
//	                        (Define roles > Allow role assignments)
//
// What Moodle hides without an error (members, totals, dates) is logged at
// warn level with the course and the fix, and counted by reason in
// cvbridge_intake_skipped_total.
//
// # Enrolments and restarts (webservice mode)
//
// Whom to poll comes from the bridge's enrolment list
// (the sink's Enrolments): every enrolment
// and unenrolment the bridge carried out through this connection's
// enroller, written in the same transaction that records the request from
// Coachview as done. So an enrolment is durable the moment it is done: a
// crash, kill -9 or another daemon holding the connection's poll lease
// before this source's next poll loses nothing, whichever course it is in.
//
// Each poll reads the list. An entry enrolled since the last poll (a new
// Ref) is resolved to its Moodle user by person_field and its course by
// course_field, and watched; one this process's enroller has just made is
// resolved from memory without a call, others cost one
// core_user_get_users_by_field call per page_size persons and one
// core_course_get_courses_by_field call per Elearningcode, once. An entry
// unenrolled since stops being watched. An entry whose user or course
// Moodle does not know is logged and left until the bridge enrols it anew;
// one that cannot be looked up now is tried at the next poll. The cursor
// keeps, per watched enrolment, its back-off, and per course the users whose
// completion was sent; a completion is sent again only when the bridge
// enrols the person anew. Enrol still wakes the runner (the source is a
// source.Watcher), so a new enrolment is watched within seconds.
//
// Enrolments made outside the bridge (by a teacher in Moodle, a cohort
// sync) are in no list. track_course_users watches them too: every
// discover_every the member lists of the mapped courses are read
// (core_enrol_get_enrolled_users, active members, only id and person
// field, page_size members per call) and every member neither watched nor
// already sent is watched. Off by default; discover_every is not used
// without it. An unenrolment made outside the bridge is noticed when the
// enrolment's next check finds it gone. Database mode watches nothing: it
// reads every completion from the database.
//
// # History: since
//
// In database mode the first poll starts at its own time: no completion
// dated before it is ever sent, however much history the Moodle holds. Set
// since to the date from which Coachview is to receive results to send the
// completions since then; `cvbridge check` shows how many a first poll
// would queue ("since 2026-11-01 would queue 1,234 completions"). Either
// way completions before the start are never sent, not on the first poll,
// not on later ones, not from the retry list. A connection that already
// has a cursor keeps it: since then only stops older completions. In
// webservice mode, without since every completion of a watched enrolment is
// sent; with it, completions whose date is before it are marked done
// unsent.
//
// # cvbridge check
//
// Check reports every problem it finds, each with what to fix. Database
// mode: the database answers; the tables exist with the prefix; the columns
// read may be read; the custom profile field exists (person_field
// profile:…); the courses table's course ids exist; no query a poll runs
// reads a growing table whole (EXPLAIN of each, named in a note); with
// since, how many completions a first poll would queue. Whenever url is set:
// the token is valid (core_webservice_get_site_info); each function this
// connection calls is allowed, a missing one named with the external-service
// setting and the capabilities it needs; the user named by check_username
// comes back with its person field, and searching by that field finds it
// (Moodle silently hides ID numbers from a token's user without
// moodle/user:viewalldetails); courses carry the course field (ID numbers
// need moodle/course:update; the courses table's ids exist). In webservice
// mode it then makes the poll's calls with the poll's parameters on the
// lowest-numbered mapped course: the member list with onlyactive=1 (with
// track_course_users; also on every mapped course in separate groups
// mode, where an empty list means moodle/site:accessallgroups is missing),
// the check_username user's completion status and grade report (a course
// total left out means moodle/grade:viewhidden is missing). A username
// search that finds nobody is told apart from hidden usernames by asking
// for user 2 (Moodle's first administrator) by id. Whether the token's role
// may assign role_id is not visible without enrolling: check says so.
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
//	  lookback: 72h             # back-dated completions and regrades this far behind the newest are sent
//	  changes: log              # log | window: how back-dated completions and regrades are found
//	  page_size: 500
//	  since: ""                 # e.g. 2025-01-01: where the first poll starts (default: its own time)
//	  # web services (webservice mode; in database mode they enable the enroller)
//	  url: https://learn.example.nl
//	  token_file: moodle.token  # or token_env: MOODLE_TOKEN (exactly one)
//	  concurrency: 2            # 1 to 4
//	  track_course_users: false # also watch members of mapped courses enrolled outside the bridge
//	  discover_every: 1h        # how often track_course_users reads the member lists
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
