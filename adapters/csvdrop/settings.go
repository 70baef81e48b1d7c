package csvdrop

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Settings is the csvdrop section of an LMS file. Relative paths are resolved
// against cvbridge.yaml's directory (Connection.BaseDir).
type Settings struct {
	// Folder is the drop folder the LMS exports into (required). It is listed,
	// not walked: files in sub-folders are never taken.
	Folder string `yaml:"folder"`
	// ProcessedDir receives files whose rows were enqueued, and files whose
	// content was enqueued before (default <folder>/processed). It must be on
	// the same file system as Folder: files are moved by renaming them.
	ProcessedDir string `yaml:"processed_dir"`
	// FailedDir receives files of which no row was usable (default
	// <folder>/failed), on the same file system as Folder.
	FailedDir string `yaml:"failed_dir"`
	// Pattern is a glob on the file name, compared case-insensitively
	// (default *.csv). Dotfiles, *.tmp, *.part and ~$* (Excel lock files) are
	// always ignored.
	Pattern string `yaml:"pattern"`
	// Settle is how long a file's size and modification time must stay
	// unchanged before it is taken (default 500ms), so a file still being
	// written is never read half. A file renamed into place whose modification
	// time is at least Settle old is taken at once.
	Settle time.Duration `yaml:"settle"`
	// Delimiter is the field separator: auto, ";", "," or tab (default auto:
	// whichever of the three occurs most often in the header line).
	Delimiter string `yaml:"delimiter"`
	// Encoding is the character encoding: auto, utf-8 or windows-1252
	// (default auto: UTF-8, with or without byte-order mark, when the whole
	// file is valid UTF-8, Windows-1252 otherwise). A file that starts with
	// a UTF-16 byte-order mark (Excel's "Unicode text") is read as UTF-16
	// whatever the setting: the mark is unambiguous.
	Encoding string `yaml:"encoding"`
	// DateFormats are the Go time layouts tried in order for every date
	// column (default: ISO dates and date-times with or without zone, and
	// Dutch day-month-year dates with -, / or . separators, optionally with a
	// time). Dates without a zone are in the connection's time zone.
	DateFormats []string `yaml:"date_formats"`
	// PassedValues are the cell values meaning true in the passed and
	// attendance columns, compared case-insensitively after trimming
	// (default ja, j, true, 1, yes, y, geslaagd, voldoende, passed, behaald).
	// Setting the key replaces the whole default list.
	PassedValues []string `yaml:"passed_values"`
	// FailedValues are the cell values meaning false (default nee, n, false,
	// 0, no, niet geslaagd, gezakt, onvoldoende, failed, niet behaald).
	// Setting the key replaces the whole default list.
	FailedValues []string `yaml:"failed_values"`
	// Columns maps completion fields to CSV header names.
	Columns Columns `yaml:"columns"`
	// OptionalColumns lists the columns keys (remark, result_remark,
	// completed_at, ...) a file may lack: their fields are then empty in
	// every row, and the file's log line says so (default [remark]). Setting
	// the key replaces the default list. person, elearningcode and passed
	// cannot be optional.
	OptionalColumns []string `yaml:"optional_columns"`
	// ThousandsSeparator is the character the export groups thousands with
	// in numbers: "." (Dutch: 1.234,5), "," (English: 1,234.5) or "" for none
	// (default). Without one, a number holding both "." and "," is refused as
	// ambiguous.
	ThousandsSeparator string `yaml:"thousands_separator"`
	// UnterminatedSettle is how long a file whose last line has no line
	// ending must stay unchanged before it is taken (default 2m): a missing
	// line ending usually means the writer is still busy, but a file typed by
	// hand may lack it for good.
	UnterminatedSettle time.Duration `yaml:"unterminated_settle"`
	// Plausible bounds dates and grades; rows outside them are bad rows.
	Plausible Plausibility `yaml:"plausible"`
	// ElearningCodeDefault is the e-learning code for exports without a code
	// column; it also fills empty cells of the code column when both are set.
	ElearningCodeDefault string `yaml:"elearningcode_default"`
	// EnrolExport, when set, makes the connection take enrolments from
	// Coachview by appending them to an outgoing CSV file; see EnrolExport.
	EnrolExport *EnrolExport `yaml:"enrol_export"`
}

// Columns maps completion fields to CSV header names. Header names are
// compared case-insensitively after trimming spaces and a byte-order mark.
// Every configured column must be present in a file's header, or the file is
// failed as a whole: a mistyped optional column would otherwise send results
// without their grade, and Coachview accepts only one result per person and part.
type Columns struct {
	// Person holds PersoonExterneId (required).
	Person string `yaml:"person"`
	// ElearningCode holds the Elearningcode (required unless
	// elearningcode_default is set).
	ElearningCode string `yaml:"elearningcode"`
	// CompletedAt holds the completion date (root Datum).
	CompletedAt string `yaml:"completed_at"`
	// Passed holds whether the person passed, one of the passed or failed
	// values (required).
	Passed string `yaml:"passed"`
	// Result holds a free-text result such as "67%" (Geslaagd/@Resultaat).
	Result string `yaml:"result"`
	// ResultDecimal holds a number (Geslaagd/@ResultaatDecimaal); a decimal
	// comma and thousands separators are accepted ("1.234,5"). Not together
	// with Result.
	ResultDecimal string `yaml:"result_decimal"`
	// Remark holds the remark on the completion (root Opmerking).
	Remark string `yaml:"remark"`
	// ResultDate holds the result date (Geslaagd/@Datum).
	ResultDate string `yaml:"result_date"`
	// ResultRemark holds the remark on the result (Geslaagd/@Opmerking).
	ResultRemark string `yaml:"result_remark"`
	// Attendance holds whether the person attended, one of the passed or
	// failed values; an empty cell means no attendance registration.
	Attendance string `yaml:"attendance"`
	// AttendanceDate holds the attendance date; needs Attendance.
	AttendanceDate string `yaml:"attendance_date"`
	// AttendanceRemark holds the attendance remark; needs Attendance.
	AttendanceRemark string `yaml:"attendance_remark"`
}

// DefaultSettings returns the settings a connection starts from before its
// LMS file is applied.
func DefaultSettings() Settings {
	return Settings{
		Pattern:   "*.csv",
		Settle:    500 * time.Millisecond,
		Delimiter: "auto",
		Encoding:  "auto",
		DateFormats: []string{
			"2006-01-02",
			"2006-01-02 15:04",
			"2006-01-02 15:04:05",
			"2006-01-02T15:04",
			"2006-01-02T15:04:05",
			"2006-01-02T15:04:05Z07:00",
			"2006-01-02 15:04:05Z07:00",
			"2006-01-02T15:04:05-0700",
			"02-01-2006",
			"2-1-2006",
			"02-01-2006 15:04",
			"2-1-2006 15:04",
			"02-01-2006 15:04:05",
			"2-1-2006 15:04:05",
			"02/01/2006",
			"2/1/2006",
			"2/1/2006 15:04",
			"02.01.2006",
			"2.1.2006",
		},
		PassedValues:       []string{"ja", "j", "waar", "true", "1", "yes", "y", "geslaagd", "voldoende", "passed", "behaald"},
		FailedValues:       []string{"nee", "n", "onwaar", "false", "0", "no", "niet geslaagd", "gezakt", "onvoldoende", "failed", "niet behaald"},
		OptionalColumns:    []string{"remark"},
		UnterminatedSettle: 2 * time.Minute,
		Plausible:          defaultPlausibility(),
	}
}

// Delimiter and encoding setting values.
const (
	auto           = "auto"
	encUTF8        = "utf-8"
	encWindows1252 = "windows-1252"
	encUTF16       = "utf-16" // never set: a file's byte-order mark says so
)

// thousandsByte returns the declared thousands separator, or 0 for none.
func (s Settings) thousandsByte() byte {
	if len(s.ThousandsSeparator) == 1 {
		return s.ThousandsSeparator[0]
	}
	return 0
}

// delimiterRune returns the configured delimiter, or 0 for auto.
func (s Settings) delimiterRune() rune {
	switch s.Delimiter {
	case ";":
		return ';'
	case ",":
		return ','
	case "tab", "\t":
		return '\t'
	}
	return 0
}

// Validate normalises the settings an LMS file gave and records every
// mistake in p by its key (adapters.Settings).
func (s *Settings) Validate(c adapters.Connection, p *kit.Problems) {
	s.Encoding = strings.ToLower(strings.TrimSpace(s.Encoding))
	if s.EnrolExport != nil {
		e := s.EnrolExport.withDefaults()
		s.EnrolExport = &e
	}
	s.validate(c.BaseDir, p)
}

// Capabilities declares what a Folder does: it watches its folder, checks
// it, leaves it as it is when polled dry, and enrols with enrol_export.
func (s *Settings) Capabilities() source.Capabilities {
	return source.Capabilities{Watch: true, Check: true, DryRun: true, Enrol: s.EnrolExport != nil}
}

// dirs returns the absolute drop, processed and failed directories.
func (s Settings) dirs(baseDir string) (folder, processed, failed string) {
	folder = kit.Resolve(baseDir, s.Folder)
	processed, failed = filepath.Join(folder, "processed"), filepath.Join(folder, "failed")
	if s.ProcessedDir != "" {
		processed = kit.Resolve(baseDir, s.ProcessedDir)
	}
	if s.FailedDir != "" {
		failed = kit.Resolve(baseDir, s.FailedDir)
	}
	return folder, processed, failed
}

// validate checks the settings in one place and records every mistake in
// p. A check that needs a value an earlier one refused (the folder, the
// pattern) is skipped.
func (s Settings) validate(baseDir string, p *kit.Problems) {
	folder := ""
	if strings.TrimSpace(s.Folder) == "" {
		p.Addf("folder", "required: the drop folder the LMS exports CSV files into")
	} else {
		var processed, failed string
		folder, processed, failed = s.dirs(baseDir)
		if processed == folder {
			p.Addf("processed_dir", "must differ from folder %s: files moved there would be taken again", folder)
		}
		if failed == folder {
			p.Addf("failed_dir", "must differ from folder %s: files moved there would be taken again", folder)
		}
	}
	if s.Pattern == "" || strings.ContainsAny(s.Pattern, `/\`) {
		p.Addf("pattern", "must be a glob on the file name such as *.csv, got %q", s.Pattern)
	} else if _, err := filepath.Match(s.Pattern, "x"); err != nil {
		p.Addf("pattern", "bad glob %q: %v", s.Pattern, err)
	}
	if s.Settle < 0 {
		p.Addf("settle", "must not be negative, got %s", s.Settle)
	}
	if s.UnterminatedSettle < 0 {
		p.Addf("unterminated_settle", "must not be negative, got %s", s.UnterminatedSettle)
	}
	switch s.ThousandsSeparator {
	case "", ".", ",":
	default:
		p.Addf("thousands_separator", `must be ".", "," or empty (none), got %q`, s.ThousandsSeparator)
	}
	if key, msg := s.Plausible.validate(); key != "" {
		p.Addf(key, "%s", msg)
	}
	for _, k := range s.OptionalColumns {
		switch {
		case k == "person", k == "elearningcode", k == "passed":
			p.Addf("optional_columns", "%s cannot be optional: no result can be sent without it", k)
		case !slices.Contains(columnKeys[:], k):
			p.Addf("optional_columns", "%q is not a columns key; use one of %s", k, strings.Join(columnKeys[:], ", "))
		}
	}
	if s.Delimiter != auto && s.delimiterRune() == 0 {
		p.Addf("delimiter", `must be auto, ";", "," or tab, got %q`, s.Delimiter)
	}
	if s.Encoding != auto && s.Encoding != encUTF8 && s.Encoding != encWindows1252 {
		p.Addf("encoding", "must be auto, utf-8 or windows-1252, got %q", s.Encoding)
	}
	if len(s.DateFormats) == 0 {
		p.Addf("date_formats", "must list at least one Go time layout such as 2006-01-02")
	}
	for i, layout := range s.DateFormats {
		if !strings.Contains(layout, "2006") {
			p.Addf("date_formats", "layout %d (%q) has no four-digit year 2006: layouts are Go reference times such as 02-01-2006", i+1, layout)
		}
	}
	if err := checkValues(s.PassedValues); err != "" {
		p.Addf("passed_values", "%s", err)
	}
	if err := checkValues(s.FailedValues); err != "" {
		p.Addf("failed_values", "%s", err)
	}
	passed := valueSet(s.PassedValues)
	for _, v := range s.FailedValues {
		if passed[normValue(v)] {
			p.Addf("failed_values", "%q is also one of passed_values", v)
		}
	}
	c := s.Columns
	if strings.TrimSpace(c.Person) == "" {
		p.Addf("columns.person", "required: the header of the column holding PersoonExterneId")
	}
	if strings.TrimSpace(c.Passed) == "" {
		p.Addf("columns.passed", "required: the header of the column saying whether the person passed")
	}
	if strings.TrimSpace(c.ElearningCode) == "" && strings.TrimSpace(s.ElearningCodeDefault) == "" {
		p.Addf("columns.elearningcode", "required unless elearningcode_default gives one code for the whole export")
	}
	if c.Result != "" && c.ResultDecimal != "" {
		p.Addf("columns.result_decimal", "set at most one of columns.result and columns.result_decimal: Coachview accepts Resultaat or ResultaatDecimaal, not both")
	}
	if c.Attendance == "" && (c.AttendanceDate != "" || c.AttendanceRemark != "") {
		key := "columns.attendance_date"
		if c.AttendanceDate == "" {
			key = "columns.attendance_remark"
		}
		p.Addf(key, "needs columns.attendance: attendance date and remark belong to an attendance registration")
	}
	if s.EnrolExport != nil {
		s.EnrolExport.validate(baseDir, folder, s.Pattern, p)
	}
}

// checkValues reports what is wrong with a passed or failed value list, or "".
func checkValues(values []string) string {
	if len(values) == 0 {
		return "must list at least one value"
	}
	for _, v := range values {
		if normValue(v) == "" {
			return "values must not be empty"
		}
	}
	return ""
}
