// Package csvdrop is the adapter for LMSs that export results as CSV files
// into a folder, often from Excel on Dutch Windows (";" separated,
// Windows-1252, decimal comma, day-month-year dates).
//
// It owns the drop folder of a connection and the files in it. It takes a
// file only when it is whole: its size and modification time have settled,
// its last line ends with a line ending (or it stood still for
// unterminated_settle), and no process holds it open for writing (inotify
// close-after-write tracking while Watch runs, /proc otherwise). It hashes
// the file, reads it as a stream, commits all its good rows in one batch
// marked "sha256:<hex of the content>", checks size and modification time
// again, and moves it to the processed directory, or to the failed directory
// when no row was usable. A file that changed before the move stays and is
// read again. Rows appended to a file after it was moved, or written to a new
// header-less file of its name, are copied below its header into a
// continuation file in the drop folder (continued.go), for an hour after the
// take; the files so watched are listed in a hidden file of the processed
// directory (.cvbridge-recent-<hash of the connection's name>.json), read at
// every poll, so a reload, a restart or another daemon polling the same
// folder goes on watching them.
//
// A symbolic link in the drop folder, the processed and failed directories
// or as the enrolment export is never followed, and the adapter's own files
// there are created under new random names (nofollow.go): the LMS side that
// writes there must not have the daemon read or write other files for it.
// The processed and failed directories inside the drop folder are reached
// through an os.Root of the drop folder (taken.go), so one replaced by a
// link out of it is refused at each system call, not checked beforehand.
//
// Every row that will not be sent is listed in "<file>.errors.csv" beside
// the moved file (columns line;reason;raw row), in line order: rows the
// parser refused, with the reason, and rows the core's checks rejected
// (Checkpoint.Rejected). The first few are logged with file, line and reason.
// The mark makes a crash between commit and move, and a file dropped twice,
// harmless: content seen before is moved without being enqueued again.
// Business checks of the completions (lengths, result text and decimal
// together) are the core's; this package checks what is wrong with the CSV
// and what is implausible in it (dates in the future, grades out of range,
// ambiguous numbers).
//
// The parser (Parser, ParseDate, ParseDecimal) is pure and separate from the
// folder handling (Folder).
//
// The adapter's settings node, with the defaults (see Settings):
//
//	settings:
//	  folder: exports                 # required; relative to cvbridge.yaml's directory
//	  processed_dir: exports/processed
//	  failed_dir: exports/failed
//	  pattern: "*.csv"                # dotfiles, *.tmp, *.part, ~$* are always ignored
//	  settle: 500ms
//	  unterminated_settle: 2m         # for a file whose last line has no line ending
//	  delimiter: auto                 # auto | ";" | "," | tab
//	  encoding: auto                  # auto | utf-8 | windows-1252 (UTF-16 is known by its byte-order mark)
//	  date_formats: ["2006-01-02", "02-01-2006", ...]
//	  passed_values: [ja, j, waar, true, 1, yes, y, geslaagd, voldoende, passed, behaald]
//	  failed_values: [nee, n, onwaar, "false", "0", "no", niet geslaagd, gezakt, onvoldoende, failed, niet behaald]
//	  thousands_separator: ""         # "" (none: "1.234,5" is refused as ambiguous) | "." | ","
//	  optional_columns: [remark]      # columns keys a file may lack
//	  plausible:
//	    future_tolerance: 24h         # dates later than now + this are refused
//	    earliest_date: 2000-01-01     # dates before are refused ("" = none)
//	    grade_min: 0                  # result_decimal below is refused ("" = none)
//	    grade_max: ""                 # result_decimal above is refused ("" = none)
//	  elearningcode_default: ""       # one code for exports without a code column
//	  columns:                        # our field: CSV header name
//	    person: Deelnemer             # required
//	    elearningcode: Cursuscode     # required unless elearningcode_default is set
//	    passed: Geslaagd              # required
//	    completed_at: Datum afgerond
//	    result: ""                    # free text, or
//	    result_decimal: Cijfer        # a number, "7,5" accepted
//	    remark: ""
//	    result_date: ""
//	    result_remark: ""
//	    attendance: ""
//	    attendance_date: ""
//	    attendance_remark: ""
//	  enrol_export:                   # optional: take enrolments from Coachview (see EnrolExport)
//	    file: outgoing/enrolments.csv # required; rows appended, header written once
//	    format: moodle_upload         # moodle_upload | custom
//	    columns: []                   # custom only: - {header: Deelnemer, value: person_id}
//	    role: student
//	    delimiter: ","                # "," | ";" | tab
//	    encoding: utf-8               # utf-8 | windows-1252
package csvdrop
