// Package csvdrop is the adapter for LMSs that export results as CSV files
// into a folder, often from Excel on Dutch Windows (";" separated,
// Windows-1252, decimal comma, day-month-year dates).
//
// It owns the drop folder of a connection and the files in it: it takes a
// file once its size and modification time have settled, hashes it, reads it
// as a stream, commits all its good rows in one batch marked
// "sha256:<hex of the content>", and moves it to the processed directory,
// or to the failed directory when no row was usable. Bad rows are listed in
// "<file>.errors.csv" beside the moved file (columns line;reason;raw row) and
// logged with file, line and reason. The mark makes a crash between commit
// and move, and a file dropped twice, harmless: content seen before is moved
// without being enqueued again. Business checks of the completions (lengths,
// result text and decimal together) are the core's; this package reports only
// what is wrong with the CSV.
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
//	  delimiter: auto                 # auto | ";" | "," | tab
//	  encoding: auto                  # auto | utf-8 | windows-1252
//	  date_formats: ["2006-01-02", "02-01-2006", ...]
//	  passed_values: [ja, j, true, 1, yes, y, geslaagd, voldoende, passed, behaald]
//	  failed_values: [nee, n, "false", "0", "no", niet geslaagd, gezakt, onvoldoende, failed, niet behaald]
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
