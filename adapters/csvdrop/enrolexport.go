package csvdrop

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// EnrolExport is the optional enrol_export block of the csvdrop settings:
// enrolments Coachview sends are appended, one row each, to an outgoing CSV
// file that the LMS imports (e.g. Moodle's "Upload users"). With it set, the
// connection's source is an *EnrollingFolder, which implements
// source.Enroller.
type EnrolExport struct {
	// File is the outgoing CSV file (required; relative to cvbridge.yaml's
	// directory). It is created with a header line when missing, so the
	// importing side may take it away (rename it) after each import.
	File string `yaml:"file"`
	// Format is moodle_upload (default) or custom.
	//
	// moodle_upload writes Moodle's user-upload columns
	// username,firstname,lastname,email,idnumber,course1,role1,enrolstatus1:
	// username is the lower-cased PersoonExterneId, idnumber the
	// PersoonExterneId, lastname the infix and last name together, course1
	// the Elearningcode (the Moodle course's short name). Moodle's upload
	// tool has no column that removes an enrolment, so an unenrolment is a
	// row with enrolstatus1 = 1 (suspended; the user and the grades stay)
	// and empty names and e-mail address; an enrolment has enrolstatus1 = 0,
	// which also re-activates a suspended one. Upload with "Add new and
	// update existing users" and "Fill in missing from file and defaults",
	// so the empty cells of unenrolment rows change nothing.
	Format string `yaml:"format"`
	// Columns are the columns of the custom format, in order (required for
	// custom, not allowed otherwise).
	Columns []ExportColumn `yaml:"columns"`
	// Role is the role of enrolments (Moodle's role short name; default student).
	Role string `yaml:"role"`
	// Delimiter is ",", ";" or tab (default ",").
	Delimiter string `yaml:"delimiter"`
	// Encoding is utf-8 (default) or windows-1252. A name that cannot be
	// written in windows-1252 is refused (a permanent error of the enrolment).
	Encoding string `yaml:"encoding"`
}

// ExportColumn is one column of the custom format.
type ExportColumn struct {
	// Header is the column's name in the header line (default: Value).
	Header string `yaml:"header"`
	// Value is what the column holds, one of ExportValues.
	Value string `yaml:"value"`
}

// Export formats.
const (
	FormatMoodleUpload = "moodle_upload"
	FormatCustom       = "custom"
)

// ExportValues are the values a custom column can hold: the person's id,
// lower-cased id (username), names, infix and last name together
// (last_name_full), e-mail address; the e-learning code; the action
// (enrol or unenrol), the role, Moodle's enrolment status (0 for enrol, 1
// for unenrol) and the time the row was written (RFC 3339).
var ExportValues = []string{"person_id", "username", "first_name", "infix", "last_name", "last_name_full",
	"email", "elearningcode", "action", "role", "enrolstatus", "time"}

// moodleUploadColumns are the columns of the moodle_upload format.
var moodleUploadColumns = []ExportColumn{
	{"username", "username"}, {"firstname", "first_name"}, {"lastname", "last_name_full"}, {"email", "email"},
	{"idnumber", "person_id"}, {"course1", "elearningcode"}, {"role1", "role"}, {"enrolstatus1", "enrolstatus"},
}

// withDefaults fills the zero fields of e.
func (e EnrolExport) withDefaults() EnrolExport {
	if e.Format == "" {
		e.Format = FormatMoodleUpload
	}
	if e.Role == "" {
		e.Role = "student"
	}
	if e.Delimiter == "" {
		e.Delimiter = ","
	}
	e.Encoding = strings.ToLower(strings.TrimSpace(e.Encoding))
	if e.Encoding == "" {
		e.Encoding = encUTF8
	}
	for i := range e.Columns {
		if e.Columns[i].Header == "" {
			e.Columns[i].Header = e.Columns[i].Value
		}
	}
	return e
}

// validate checks the enrol_export block and records every mistake in p.
// folder and pattern are the drop folder's, which the outgoing file must
// stay out of ("" when they were refused: that check is then skipped).
func (e EnrolExport) validate(baseDir, folder, pattern string, p *kit.Problems) {
	if strings.TrimSpace(e.File) == "" {
		p.Addf("enrol_export.file", "required: the CSV file enrolments are appended to")
	} else if file := kit.Resolve(baseDir, e.File); folder != "" && filepath.Dir(file) == folder {
		if ok, _ := filepath.Match(strings.ToLower(pattern), strings.ToLower(filepath.Base(file))); ok {
			p.Addf("enrol_export.file", "%s is in the drop folder and matches pattern %q: the bridge would read its own enrolments as results", file, pattern)
		}
	}
	switch e.Format {
	case FormatMoodleUpload:
		if len(e.Columns) > 0 {
			p.Addf("enrol_export.columns", "only for format custom: moodle_upload has fixed columns")
		}
	case FormatCustom:
		if len(e.Columns) == 0 {
			p.Addf("enrol_export.columns", "required for format custom: list the columns, e.g. - {header: Deelnemer, value: person_id}")
		}
		for i, c := range e.Columns {
			if !slices.Contains(ExportValues, c.Value) {
				p.Addf("enrol_export.columns", "column %d: value %q is not one of %s", i+1, c.Value, strings.Join(ExportValues, ", "))
				break
			}
		}
	default:
		p.Addf("enrol_export.format", "must be moodle_upload or custom, got %q", e.Format)
	}
	if exportDelimiter(e.Delimiter) == 0 {
		p.Addf("enrol_export.delimiter", `must be ",", ";" or tab, got %q`, e.Delimiter)
	}
	if e.Encoding != encUTF8 && e.Encoding != encWindows1252 {
		p.Addf("enrol_export.encoding", "must be utf-8 or windows-1252, got %q", e.Encoding)
	}
	if strings.ContainsAny(e.Role, "\r\n") {
		p.Addf("enrol_export.role", "must be one line")
	}
}

// exportDelimiter is the delimiter rune of a setting, 0 when invalid.
func exportDelimiter(d string) rune {
	switch d {
	case ",":
		return ','
	case ";":
		return ';'
	case "tab", "\t":
		return '\t'
	}
	return 0
}

// exporter appends enrolment rows to the outgoing file. It is safe for
// concurrent use, also by several processes (rows are written under an
// exclusive flock, one write each).
type exporter struct {
	path    string
	cfg     EnrolExport
	columns []ExportColumn
	header  []byte // the encoded header line
	clock   clock.Clock
	mu      sync.Mutex
	comma   rune
	windows bool
}

// newExporter returns the exporter of cfg (validated) writing to path.
func newExporter(cfg EnrolExport, path string, clk clock.Clock) (*exporter, error) {
	x := &exporter{path: path, cfg: cfg, columns: cfg.Columns, clock: clk, comma: exportDelimiter(cfg.Delimiter), windows: cfg.Encoding == encWindows1252}
	if cfg.Format == FormatMoodleUpload {
		x.columns = moodleUploadColumns
	}
	headers := make([]string, len(x.columns))
	for i, c := range x.columns {
		headers[i] = c.Header
	}
	var err error
	if x.header, err = x.encode(headers); err != nil {
		return nil, fmt.Errorf("csvdrop: enrol_export.columns: header: %w", err)
	}
	return x, nil
}

// encode renders one CSV line in the configured delimiter and encoding.
func (x *exporter) encode(fields []string) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Comma = x.comma
	if err := w.Write(fields); err != nil {
		return nil, err
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, err
	}
	if !x.windows {
		return buf.Bytes(), nil
	}
	out, err := charmap.Windows1252.NewEncoder().Bytes(buf.Bytes())
	if err != nil {
		return nil, errors.New("a value cannot be written in windows-1252")
	}
	return out, nil
}

// row is the line of one enrolment (action "enrol" or "unenrol").
func (x *exporter) row(action string, en source.Enrolment) ([]byte, error) {
	status := "0"
	if action == "unenrol" {
		status = "1"
	}
	full := strings.TrimSpace(en.Infix + " " + en.LastName)
	values := map[string]string{
		"person_id": en.PersonID, "username": strings.ToLower(en.PersonID), "first_name": en.FirstName,
		"infix": en.Infix, "last_name": en.LastName, "last_name_full": full, "email": en.Email,
		"elearningcode": en.ElearningCode, "action": action, "role": x.cfg.Role, "enrolstatus": status,
		"time": x.clock.Now().Format(time.RFC3339),
	}
	fields := make([]string, len(x.columns))
	for i, c := range x.columns {
		fields[i] = neutralise(values[c.Value])
	}
	b, err := x.encode(fields)
	if err != nil {
		// The text reaches Coachview's user: it names no file of the server.
		return nil, &source.PermanentError{Err: fmt.Errorf("enrolment of %s in %s cannot be written to the enrolment export: %w", en.PersonID, en.ElearningCode, err)}
	}
	return b, nil
}

// neutralise keeps a spreadsheet program from running a cell as a formula
// (CSV injection): a value starting with =, +, - or @ that is not a plain
// number gets a leading apostrophe, which spreadsheets hide and read as
// "text follows". Values with control characters never get here: the
// inbound checks refuse them.
func neutralise(v string) string {
	if v == "" || !strings.ContainsRune("=+-@", rune(v[0])) {
		return v
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return v
	}
	return "'" + v
}

// appendRow appends line to the file, writing the header first into a new
// or empty file, and syncs it. If the file was taken away (removed or
// renamed) between opening and writing, the row is written again to the
// file now at the path, so no row is lost to an importer's clean-up.
func (x *exporter) appendRow(ctx context.Context, line []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for range 3 {
		if err := ctx.Err(); err != nil {
			return err
		}
		same, err := x.appendOnce(line)
		if err != nil || same {
			return err
		}
	}
	return fmt.Errorf("csvdrop: %s was replaced three times while a row was written to it", x.path)
}

// appendOnce writes line once and reports whether the path still names the
// file written to.
func (x *exporter) appendOnce(line []byte) (bool, error) {
	f, err := openRegular(x.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return false, fmt.Errorf("csvdrop: open enrolment export: %w", err)
	}
	// The row is synced before this returns; a close error after that loses
	// nothing, and failing on it would have the row written twice.
	defer func() { _ = f.Close() }()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, fmt.Errorf("csvdrop: lock %s: %w", x.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("csvdrop: %w", err)
	}
	out := line
	if st.Size() == 0 {
		out = append(append([]byte(nil), x.header...), line...)
	} else if err := x.checkHeader(); err != nil {
		return false, err
	}
	if _, err := f.Write(out); err != nil {
		return false, fmt.Errorf("csvdrop: write %s: %w", x.path, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("csvdrop: sync %s: %w", x.path, err)
	}
	if st.Size() == 0 {
		syncDir(filepath.Dir(x.path))
	}
	now, err := os.Lstat(x.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("csvdrop: %w", err)
	}
	return os.SameFile(st, now), nil
}

// checkHeader refuses to append to a file whose header line is not this
// configuration's (the format was changed while rows were waiting).
func (x *exporter) checkHeader() error {
	f, err := openNoFollow(x.path)
	if err != nil {
		return fmt.Errorf("csvdrop: read header of %s: %w", x.path, err)
	}
	defer func() { _ = f.Close() }() // read only
	got := make([]byte, len(x.header))
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, x.header) {
		return fmt.Errorf("csvdrop: %s starts with another header than enrol_export's columns: import or move it, then the enrolment is retried", x.path)
	}
	return nil
}

// syncDir makes a new directory entry durable; failing to is not an error
// of the row, which is synced already.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// EnrollingFolder is a drop folder whose connection also takes enrolments:
// it implements source.Enroller by appending rows to the enrol_export file.
type EnrollingFolder struct {
	*Folder
	export *exporter
}

var _ source.Enroller = (*EnrollingFolder)(nil)

// Enrol appends an enrolment row. Person id and e-learning code are required.
func (e *EnrollingFolder) Enrol(ctx context.Context, en source.Enrolment) error {
	return e.write(ctx, "enrol", en)
}

// Unenrol appends an unenrolment row (moodle_upload: enrolstatus1 = 1).
func (e *EnrollingFolder) Unenrol(ctx context.Context, personID, elearningCode string) error {
	return e.write(ctx, "unenrol", source.Enrolment{PersonID: personID, ElearningCode: elearningCode})
}

func (e *EnrollingFolder) write(ctx context.Context, action string, en source.Enrolment) error {
	en.PersonID, en.ElearningCode = strings.TrimSpace(en.PersonID), strings.TrimSpace(en.ElearningCode)
	if en.PersonID == "" || en.ElearningCode == "" {
		return &source.PermanentError{Err: errors.New("csvdrop: an enrolment needs a person id and an e-learning code")}
	}
	line, err := e.export.row(action, en)
	if err != nil {
		return err
	}
	if err := e.export.appendRow(ctx, line); err != nil {
		return err
	}
	e.log.Info("enrolment exported", "action", action, "person", en.PersonID, "elearningcode", en.ElearningCode, "file", e.export.path)
	return nil
}

// withEnroller returns f, or f as an *EnrollingFolder when enrol_export is set.
func (f *Folder) withEnroller(baseDir string) (source.Source, error) {
	if f.settings.EnrolExport == nil {
		return f, nil
	}
	x, err := newExporter(*f.settings.EnrolExport, kit.Resolve(baseDir, f.settings.EnrolExport.File), f.clock)
	if err != nil {
		return nil, err
	}
	return &EnrollingFolder{Folder: f, export: x}, nil
}
