package csvdrop

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/source"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

// enrollingFolder builds a csvdrop source with enrol_export block in dir,
// reading the time from clk.
func enrollingFolder(t *testing.T, dir, block string, clk clock.Clock) *EnrollingFolder {
	t.Helper()
	f := newTestFolder(t, connection(t, dir, minimalSettings+block), clk)
	src, err := f.withEnroller(dir)
	require.NoError(t, err)
	ef, ok := src.(*EnrollingFolder)
	require.True(t, ok, "enrol_export makes an enrolling folder, got %T", src)
	return ef
}

var jan = source.Enrolment{PersonID: "P12345", FirstName: "Jan", Infix: "van", LastName: "Jansen",
	Email: "jan@jansen.nl", ElearningCode: "VCA-BASIS"}

func TestEnrolExportMoodleUpload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ef := enrollingFolder(t, dir, "  enrol_export:\n    file: out/enrolments.csv\n", clock.System{})
	require.NoError(t, os.Mkdir(filepath.Join(dir, "out"), 0o755))
	ctx := t.Context()
	require.NoError(t, ef.Enrol(ctx, jan))
	require.NoError(t, ef.Unenrol(ctx, "P12345", "VCA-BASIS"))
	comma := jan
	comma.FirstName, comma.Infix, comma.LastName = `Anne "Ans"`, "", "de Vries, jr."
	require.NoError(t, ef.Enrol(ctx, comma))

	got, err := os.ReadFile(filepath.Join(dir, "out", "enrolments.csv"))
	require.NoError(t, err)
	assert.Equal(t, "username,firstname,lastname,email,idnumber,course1,role1,enrolstatus1\n"+
		"p12345,Jan,van Jansen,jan@jansen.nl,P12345,VCA-BASIS,student,0\n"+
		"p12345,,,,P12345,VCA-BASIS,student,1\n"+
		`p12345,"Anne ""Ans""","de Vries, jr.",jan@jansen.nl,P12345,VCA-BASIS,student,0`+"\n", string(got))

	// The importer takes the file away: the next row starts a new one.
	require.NoError(t, os.Rename(filepath.Join(dir, "out", "enrolments.csv"), filepath.Join(dir, "out", "imported.csv")))
	require.NoError(t, ef.Unenrol(ctx, "P2", "E2"))
	got, err = os.ReadFile(filepath.Join(dir, "out", "enrolments.csv"))
	require.NoError(t, err)
	assert.Equal(t, "username,firstname,lastname,email,idnumber,course1,role1,enrolstatus1\np2,,,,P2,E2,student,1\n", string(got))
}

func TestEnrolExportCustomWindows1252(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC))
	ef := enrollingFolder(t, dir, `  enrol_export:
    file: enrolments.txt
    format: custom
    delimiter: ";"
    encoding: Windows-1252
    role: deelnemer
    columns:
      - {header: Actie, value: action}
      - {header: Deelnemer, value: person_id}
      - {header: Voornaam, value: first_name}
      - {header: Tussenvoegsel, value: infix}
      - {header: Achternaam, value: last_name}
      - {value: email}
      - {header: Cursus, value: elearningcode}
      - {header: Rol, value: role}
      - {header: Tijd, value: time}
`, clk)
	zoe := jan
	zoe.FirstName = "Zoë"
	require.NoError(t, ef.Enrol(t.Context(), zoe))
	require.NoError(t, ef.Unenrol(t.Context(), "P12345", "VCA-BASIS"))
	got, err := os.ReadFile(filepath.Join(dir, "enrolments.txt"))
	require.NoError(t, err)
	assert.Equal(t, "Actie;Deelnemer;Voornaam;Tussenvoegsel;Achternaam;email;Cursus;Rol;Tijd\n"+
		"enrol;P12345;Zo\xeb;van;Jansen;jan@jansen.nl;VCA-BASIS;deelnemer;2026-03-02T10:30:00Z\n"+
		"unenrol;P12345;;;;;VCA-BASIS;deelnemer;2026-03-02T10:30:00Z\n", string(got))

	polish := jan
	polish.FirstName = "Łukasz"
	err = ef.Enrol(t.Context(), polish)
	require.Error(t, err)
	assert.True(t, source.IsPermanent(err), "a name the encoding cannot hold is refused for good: %v", err)
	assert.Contains(t, err.Error(), "windows-1252")
	after, err := os.ReadFile(filepath.Join(dir, "enrolments.txt"))
	require.NoError(t, err)
	assert.Equal(t, got, after, "nothing written")
}

func TestEnrolExportConcurrentRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Two sources on one file stand for two daemons: the flock keeps their rows apart.
	a := enrollingFolder(t, dir, "  enrol_export:\n    file: enrolments.csv\n", clock.System{})
	b := enrollingFolder(t, dir, "  enrol_export:\n    file: enrolments.csv\n", clock.System{})
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		ef := a
		if i%2 == 1 {
			ef = b
		}
		wg.Go(func() {
			en := jan
			en.PersonID = fmt.Sprintf("P%03d", i)
			en.LastName = string(bytes.Repeat([]byte("x"), 500)) // long rows, written in one call each
			assert.NoError(t, ef.Enrol(t.Context(), en))
		})
	}
	wg.Wait()
	data, err := os.ReadFile(filepath.Join(dir, "enrolments.csv"))
	require.NoError(t, err)
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	require.NoError(t, err, "every row whole")
	require.Equal(t, n+1, len(records), "one header and one row per enrolment")
	assert.Equal(t, "username", records[0][0])
	seen := map[string]bool{}
	for _, r := range records[1:] {
		require.Len(t, r, 8)
		assert.NotEqual(t, "username", r[0], "the header is written once")
		seen[r[4]] = true
	}
	assert.Len(t, seen, n)
}

func TestEnrolExportRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ef := enrollingFolder(t, dir, "  enrol_export:\n    file: enrolments.csv\n", clock.System{})
	for name, en := range map[string]source.Enrolment{
		"no person": {ElearningCode: "E1", FirstName: "Jan"},
		"no code":   {PersonID: "P1", FirstName: "Jan"},
	} {
		err := ef.Enrol(t.Context(), en)
		assert.True(t, source.IsPermanent(err), "%s: %v", name, err)
	}
	assert.NoFileExists(t, filepath.Join(dir, "enrolments.csv"))

	// A file left with another format's header is not appended to.
	path := filepath.Join(dir, "enrolments.csv")
	require.NoError(t, os.WriteFile(path, []byte("Actie;Deelnemer\nenrol;P1\n"), 0o640))
	err := ef.Enrol(t.Context(), jan)
	require.Error(t, err)
	assert.False(t, source.IsPermanent(err), "retried once the file is imported")
	assert.Contains(t, err.Error(), "another header")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "Actie;Deelnemer\nenrol;P1\n", string(got))

	// Unwritable: a transient error, the enrolment is retried.
	noDir := enrollingFolder(t, dir, "  enrol_export:\n    file: missing/enrolments.csv\n", clock.System{})
	err = noDir.Enrol(t.Context(), jan)
	require.Error(t, err)
	assert.False(t, source.IsPermanent(err))
}

func TestEnrolExportOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	c := connection(t, t.TempDir(), minimalSettings)
	b, err := adapters.Build("csvdrop", c.Connection, c.node)
	require.NoError(t, err)
	assert.False(t, b.Caps.Enrol, "a plain drop folder declares no enrolment")
	src := b.Source
	_, ok := src.(source.Enroller)
	assert.False(t, ok, "a plain drop folder takes no enrolments")

	c = connection(t, t.TempDir(), minimalSettings+"  enrol_export:\n    file: e.csv\n")
	b, err = adapters.Build("csvdrop", c.Connection, c.node)
	require.NoError(t, err)
	assert.True(t, b.Caps.Enrol, "enrol_export declares enrolment")
	src = b.Source
	_, ok = src.(source.Enroller)
	assert.True(t, ok)
	_, ok = src.(source.Watcher)
	assert.True(t, ok, "the enrolling folder still watches its drop folder")
}

func TestEnrolExportSettingsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, block, want string
	}{
		{"no file", "  enrol_export:\n    format: moodle_upload\n", ":9: enrol_export.file: required"},
		{"unknown format", "  enrol_export:\n    file: e.csv\n    format: xlsx\n", `:11: enrol_export.format: must be moodle_upload or custom, got "xlsx"`},
		{"custom without columns", "  enrol_export:\n    file: e.csv\n    format: custom\n", ":9: enrol_export.columns: required for format custom"},
		{"columns with moodle_upload", "  enrol_export:\n    file: e.csv\n    columns: [{value: email}]\n", ":11: enrol_export.columns: only for format custom"},
		{"unknown column value", "  enrol_export:\n    file: e.csv\n    format: custom\n    columns: [{header: X, value: phone}]\n", `:12: enrol_export.columns: column 1: value "phone" is not one of`},
		{"bad delimiter", "  enrol_export:\n    file: e.csv\n    delimiter: \"|\"\n", `:11: enrol_export.delimiter: must be`},
		{"bad encoding", "  enrol_export:\n    file: e.csv\n    encoding: latin-9\n", `:11: enrol_export.encoding: must be utf-8 or windows-1252`},
		{"file read back as results", "  enrol_export:\n    file: drop/Enrolments.CSV\n", ":10: enrol_export.file: /srv/lms/drop/Enrolments.CSV is in the drop folder"},
		{"unknown key", "  enrol_export:\n    file: e.csv\n    fiel: x\n", ":11: enrol_export.fiel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := build(connection(t, "/srv/lms", minimalSettings+tt.block))
			var cerr *strictyaml.Error
			require.ErrorAs(t, err, &cerr)
			assert.Contains(t, err.Error(), lmsFile+tt.want)
		})
	}
	_, err := build(connection(t, "/srv/lms", minimalSettings+"  enrol_export:\n    file: drop/enrolments.txt\n"))
	assert.NoError(t, err, "a file in the drop folder that the pattern does not match is fine")
}

// TestEnrolExportNeutralisesFormulas: a name or e-mail address a spreadsheet
// would run as a formula (CSV injection) is written with a leading
// apostrophe; plain numbers are left alone.
func TestEnrolExportNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ef := enrollingFolder(t, dir, "  enrol_export:\n    file: enrolments.csv\n", clock.System{})
	evil := jan
	evil.FirstName, evil.LastName, evil.Infix, evil.Email = `=HYPERLINK("http://x","y")`, "+1+cmd|' /C calc'!A0", "", "@SUM(A1)"
	evil.PersonID = "-42"
	require.NoError(t, ef.Enrol(t.Context(), evil))
	got, err := os.ReadFile(filepath.Join(dir, "enrolments.csv"))
	require.NoError(t, err)
	recs, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, []string{"-42", `'=HYPERLINK("http://x","y")`, "'+1+cmd|' /C calc'!A0", "'@SUM(A1)", "-42", "VCA-BASIS", "student", "0"}, recs[1])
	for _, v := range []string{"Jan", "7", "-7.5", "", "a=b"} {
		assert.Equal(t, v, neutralise(v))
	}
}

// TestEnrolExportRefusalNamesNoFile: the reason of a refused enrolment
// reaches Coachview's user (the enrolment link's 422): it names no file of
// the server (issue 18).
func TestEnrolExportRefusalNamesNoFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ef := enrollingFolder(t, dir, "  enrol_export:\n    file: enrolments.csv\n    encoding: windows-1252\n", clock.System{})
	polish := jan
	polish.LastName = "Łukasiewicz" // Ł has no place in Windows-1252
	err := ef.Enrol(t.Context(), polish)
	require.Error(t, err)
	assert.True(t, source.IsPermanent(err))
	assert.Contains(t, err.Error(), "cannot be written to the enrolment export")
	assert.NotContains(t, err.Error(), dir)
	assert.NotContains(t, err.Error(), "enrolments.csv")
}
