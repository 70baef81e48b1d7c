// Package scorm is the adapter (kind "scorm") that reads results straight
// from a SCORM tracking database on PostgreSQL or MySQL/MariaDB: Moodle's
// SCORM tables (preset moodle, both schemas) or any player's tables through
// an operator-supplied SELECT (preset custom). Optionally it enrols through
// configured INSERT/DELETE statements.
//
// It owns the SQL (queries.go, one place, '?' rebound per driver) and the
// cursor of a connection; what SCORM values mean is package cmi's.
//
// # How changes are found
//
// A result is per person and part, but a package writes one row per SCO,
// attempt and element. So the adapter works on pairs: (userid, scormid) in
// Moodle, (person_id, elearning_code) in a custom query. Each poll lists the
// pairs having any value modified at or after the window start (the highest
// modification time seen so far minus lookback), page_size pairs at a time
// in key order (keyset paging: never the whole table), then reads all
// tracking rows of the page's pairs, whatever their time, and evaluates each
// pair afresh: the attempt that counts (attempt), whether the package is
// done in it (sco_rule), passed (passed) and its score. So a SCO finished
// weeks after the first, or a pass written late with an earlier time, still
// yields the one right result. Each page is committed with the cursor
// (JSON: since, high, after) in one transaction; a crash resumes after the
// last committed page. Re-reading the window makes the same completions
// again: the core drops identical bodies. Reads run in read-only
// transactions on sessions set to read-only before use, as the moodle
// adapter's (adapters/internal/readonly), so neither a write nor DDL can
// reach Moodle's database through them; enrol_sql and unenrol_sql run on a
// pool of their own, opened only when configured.
//
// Moodle's schema is detected on first use: <prefix>scorm_attempt exists
// (4.3 and later: scorm_attempt, scorm_scoes_value, scorm_element) or not
// (scorm_scoes_track). Neither has an index on timemodified, so the change
// query scans; `cvbridge check` says so and names the index that helps.
//
// Values that cannot be read (a lesson_status "finished", a score "8O")
// are logged at warn level with person, elearningcode, attempt, sco and the
// element and value, and recorded in the outbox as a rejected result with
// that reason (cvbridge outbox list --state rejected); that person's
// result is not sent until the data is corrected (and within the lookback
// window again, or the cursor reset).
//
// # The custom query
//
// One SELECT, one row per person, part, attempt and SCO, returning the
// columns person_id, elearning_code, attempt_key (whole numbers order
// numerically, other keys as text), sco_key, lesson_status (SCORM 1.2),
// completion_status and success_status (SCORM 2004), score_raw, score_min,
// score_max, score_scaled (text or numbers; empty is absent) and modified
// (Unix seconds or a timestamp). It must use :cursor_time (Unix seconds)
// to return only rows modified at or after it, for example
// "WHERE t.updated >= :cursor_time", or with timestamps
// "WHERE t.updated_at >= to_timestamp(:cursor_time)" (PostgreSQL) or
// "… >= FROM_UNIXTIME(:cursor_time)" (MariaDB).
//
// A modified timestamp without a zone is wall-clock time in the provider's
// zone (timezone in cvbridge.yaml): text without an offset, a PostgreSQL
// timestamp (without time zone) or date, and every MySQL/MariaDB DATETIME,
// TIMESTAMP or DATE, whatever the DSN's parseTime and loc say (the protocol
// carries no zone; a TIMESTAMP comes in the session's time_zone). So 23:30
// in Amsterdam stays that day, not 23:30 UTC. The column's type decides,
// not the zone the driver labels a value with. A PostgreSQL timestamptz
// and text with an offset are instants and kept. Return a column holding
// UTC wall clock as an instant: "t.updated_at AT TIME ZONE 'UTC'"
// (PostgreSQL) or "TIMESTAMPDIFF(SECOND, '1970-01-01', t.updated_at)"
// (MariaDB, Unix seconds). Compare a zone-less column with :cursor_time in
// the provider's zone too: "t.updated_at >= to_timestamp(:cursor_time) AT
// TIME ZONE 'Europe/Amsterdam'" (plain to_timestamp compares in the
// session's TimeZone); FROM_UNIXTIME gives the session time_zone's wall
// clock, which should then be the provider's zone.
//
// The adapter wraps the query as a derived table to page it and to read
// whole pairs (binding :cursor_time 0), so it must not have LIMIT or ORDER
// BY of its own, nor '?' or ';'. Under sco_rule all, the SCOs of a package
// are those seen in any attempt of the pair.
//
// # Settings, with defaults
//
//	settings:
//	  driver: postgres              # required: postgres | mysql (MariaDB too)
//	  dsn_file: moodle.dsn          # one of dsn_file (relative to cvbridge.yaml's directory) and dsn_env
//	  dsn_env: ""
//	  preset: moodle                # moodle | custom
//	  prefix: mdl_                  # moodle
//	  person_field: idnumber        # moodle: idnumber | username | email | id of the user table
//	  course_field: idnumber        # moodle: idnumber | shortname of the course | codes
//	  codes: {}                     # moodle: {"scorm:12": E-1, "course:3": E-2}; wins over course_field
//	  query: ""                     # custom: the SELECT described above
//	  lookback: 24h                 # at least 1m
//	  page_size: 500                # pairs per page
//	  sco_rule: all                 # all | named
//	  sco_identifier: ""            # named: the SCO's manifest identifier (custom: its sco_key)
//	  attempt: first_passing        # first_passing | best | last
//	  passed: status                # status | threshold
//	  threshold: ""                 # threshold: pass mark on the 0…scale_max scale
//	  result: decimal               # decimal (ResultaatDecimaal) | text (Resultaat) | none
//	  scale_max: "100"              # a full score is worth this
//	  text_format: "{score}%"       # text: {score} rounded to 2 decimals
//	  send_failed: true             # false holds failures back while retakes are possible
//	  enrol_sql: ""                 # with :person_id :elearning_code :first_name :infix :last_name :email
//	  unenrol_sql: ""               # required with enrol_sql
//
// Without enrol_sql, New returns a *Source, which does not implement
// source.Enroller; with it, an *EnrollingSource, which does.
package scorm
