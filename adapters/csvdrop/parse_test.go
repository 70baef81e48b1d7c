package csvdrop

import (
	"testing"
	"time"
	_ "time/tzdata" // Europe/Amsterdam on machines without a zone database

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
)

func amsterdam(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	return loc
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	loc := amsterdam(t)
	layouts := DefaultSettings().DateFormats
	tests := []struct {
		name, in string
		want     time.Time
		wantDate string // calendar date in the provider's zone
	}{
		{"iso date", "2024-03-10", time.Date(2024, 3, 10, 0, 0, 0, 0, loc), "2024-03-10"},
		{"iso minutes", "2024-03-10 14:05", time.Date(2024, 3, 10, 14, 5, 0, 0, loc), "2024-03-10"},
		{"iso seconds", "2024-03-10 14:05:09", time.Date(2024, 3, 10, 14, 5, 9, 0, loc), "2024-03-10"},
		{"iso T no zone", "2024-03-10T14:05:09", time.Date(2024, 3, 10, 14, 5, 9, 0, loc), "2024-03-10"},
		{"iso T minutes", "2024-03-10T14:05", time.Date(2024, 3, 10, 14, 5, 0, 0, loc), "2024-03-10"},
		{"iso Z at 23:30 is the next day in Amsterdam", "2024-03-10T23:30:00Z", time.Date(2024, 3, 11, 0, 30, 0, 0, loc), "2024-03-11"},
		{"iso offset at 23:30 stays that day", "2024-03-10T23:30:00+01:00", time.Date(2024, 3, 10, 23, 30, 0, 0, loc), "2024-03-10"},
		{"iso offset in summer", "2024-07-01T23:30:00+02:00", time.Date(2024, 7, 1, 23, 30, 0, 0, loc), "2024-07-01"},
		{"iso fraction and Z", "2024-03-10T12:00:00.123Z", time.Date(2024, 3, 10, 13, 0, 0, 123e6, loc), "2024-03-10"},
		{"iso compact offset", "2024-03-10T23:30:00-0500", time.Date(2024, 3, 11, 5, 30, 0, 0, loc), "2024-03-11"},
		{"dutch", "10-03-2024", time.Date(2024, 3, 10, 0, 0, 0, 0, loc), "2024-03-10"},
		{"dutch short", "1-3-2024", time.Date(2024, 3, 1, 0, 0, 0, 0, loc), "2024-03-01"},
		{"dutch minutes at 23:30", "10-03-2024 23:30", time.Date(2024, 3, 10, 23, 30, 0, 0, loc), "2024-03-10"},
		{"dutch seconds", "10-03-2024 23:30:15", time.Date(2024, 3, 10, 23, 30, 15, 0, loc), "2024-03-10"},
		{"dutch short with time", "1-3-2024 9:05", time.Date(2024, 3, 1, 9, 5, 0, 0, loc), "2024-03-01"},
		{"dutch slashes", "10/03/2024", time.Date(2024, 3, 10, 0, 0, 0, 0, loc), "2024-03-10"},
		{"dutch short slashes", "1/3/2024", time.Date(2024, 3, 1, 0, 0, 0, 0, loc), "2024-03-01"},
		{"dutch dots", "10.03.2024", time.Date(2024, 3, 10, 0, 0, 0, 0, loc), "2024-03-10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDate(tt.in, layouts, loc)
			require.NoError(t, err)
			assert.True(t, tt.want.Equal(got), "got %s, want %s", got, tt.want)
			assert.Equal(t, tt.wantDate, got.Format("2006-01-02"))
			assert.Equal(t, loc, got.Location())
		})
	}

	for _, bad := range []string{"31-02-2024", "2024-13-01", "gisteren", "10-03-24", "03/10/2024 PM"} {
		_, err := ParseDate(bad, layouts, loc)
		assert.ErrorContains(t, err, bad, "input %q", bad)
	}
}

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"  ", ""},
		{"7", "7"},
		{"7,5", "7.5"},
		{"7.5", "7.5"},
		{" 7,50 ", "7.50"},
		{"-2,5", "-2.5"},
		{"+8", "8"},
		{",5", "0.5"},
		{"5,", "5"},
		{"007,5", "7.5"},
		{"0", "0"},
		{"1.234.567", "1234567"},
		{"1,234,567", "1234567"},
		{"1 234,5", "1234.5"},
		{"1\u00a0234,5", "1234.5"},
		{"1.234", "1.234"}, // a lone separator is the decimal one
	}
	for _, tt := range tests {
		got, err := ParseDecimal(tt.in, 0)
		require.NoError(t, err, "input %q", tt.in)
		assert.Equal(t, tt.want, got, "input %q", tt.in)
	}
	for _, bad := range []string{"abc", "7,5%", "1.2.3,4", "1.234,5,6", "1,2.3", "12.34.567", ",", "-", "1e3", "7,5 ,5", "--1", "1.234,5.6", "1.234,5", "1,234.5", "1.234.567,89"} {
		_, err := ParseDecimal(bad, 0)
		assert.ErrorIs(t, err, ErrDecimal, "input %q", bad)
	}
}

// testSettings are settings with every column configured except result.
func testSettings() Settings {
	s := DefaultSettings()
	s.Folder = "drop"
	s.Columns = Columns{
		Person: "Deelnemer", ElearningCode: "Code", CompletedAt: "Afgerond", Passed: "Geslaagd",
		ResultDecimal: "Cijfer", Remark: "Opmerking", ResultDate: "Resultaatdatum", ResultRemark: "Toelichting",
		Attendance: "Aanwezig", AttendanceDate: "Aanwezigdatum", AttendanceRemark: "Aanwezigopmerking",
	}
	return s
}

var testHeader = []string{
	"Deelnemer", "Code", "Afgerond", "Geslaagd", "Cijfer", "Opmerking",
	"Resultaatdatum", "Toelichting", "Aanwezig", "Aanwezigdatum", "Aanwezigopmerking",
}

func TestParserParse(t *testing.T) {
	t.Parallel()
	loc := amsterdam(t)
	p, err := NewParser(testSettings(), loc, testHeader, testNow)
	require.NoError(t, err)

	tests := []struct {
		name    string
		rec     []string
		want    result.Completion
		wantErr string
	}{
		{
			name: "every field",
			rec:  []string{" p1 ", "E-1", "10-03-2024", "Ja", "7,5", "goed", "2024-03-09", "ruim", "ja", "08-03-2024", "op tijd"},
			want: result.Completion{
				PersonID: "p1", ElearningCode: "E-1", CompletedAt: time.Date(2024, 3, 10, 0, 0, 0, 0, loc),
				Remark: "goed", Passed: true, ResultDecimal: "7.5", ResultDate: time.Date(2024, 3, 9, 0, 0, 0, 0, loc),
				ResultRemark: "ruim",
				Attendance:   &result.Attendance{Present: true, Date: time.Date(2024, 3, 8, 0, 0, 0, 0, loc), Remark: "op tijd"},
			},
		},
		{
			name: "optional cells empty",
			rec:  []string{"p2", "E-1", "", "nee", "", "", "", "", "", "", ""},
			want: result.Completion{PersonID: "p2", ElearningCode: "E-1"},
		},
		{
			name: "absent",
			rec:  []string{"p3", "E-1", "", "ONVOLDOENDE", "", "", "", "", "Nee", "", ""},
			want: result.Completion{PersonID: "p3", ElearningCode: "E-1", Attendance: &result.Attendance{}},
		},
		{name: "too few fields", rec: []string{"p1", "E-1"}, wantErr: "row has 2 fields, the header has 11"},
		{name: "too many fields", rec: append(append([]string{}, testHeader...), "x"), wantErr: "row has 12 fields, the header has 11"},
		{name: "no person", rec: []string{" ", "E-1", "", "ja", "", "", "", "", "", "", ""}, wantErr: `column "Deelnemer" (person) is empty`},
		{name: "no code", rec: []string{"p1", "", "", "ja", "", "", "", "", "", "", ""}, wantErr: `column "Code" (elearningcode) is empty`},
		{name: "no pass value", rec: []string{"p1", "E-1", "", "", "", "", "", "", "", "", ""}, wantErr: `column "Geslaagd" (passed) is empty`},
		{name: "unknown pass value", rec: []string{"p1", "E-1", "", "misschien", "", "", "", "", "", "", ""}, wantErr: `column "Geslaagd" (passed): "misschien" is neither`},
		{name: "bad date", rec: []string{"p1", "E-1", "31-02-2024", "ja", "", "", "", "", "", "", ""}, wantErr: `column "Afgerond" (completed_at): "31-02-2024" is not a date`},
		{name: "bad result date", rec: []string{"p1", "E-1", "", "ja", "", "", "morgen", "", "", "", ""}, wantErr: `column "Resultaatdatum" (result_date)`},
		{name: "bad decimal", rec: []string{"p1", "E-1", "", "ja", "7,5,1", "", "", "", "", "", ""}, wantErr: `column "Cijfer" (result_decimal): "7,5,1": not a decimal number`},
		{name: "bad attendance", rec: []string{"p1", "E-1", "", "ja", "", "", "", "", "soms", "", ""}, wantErr: `column "Aanwezig" (attendance): "soms"`},
		{name: "bad attendance date", rec: []string{"p1", "E-1", "", "ja", "", "", "", "", "ja", "x", ""}, wantErr: `column "Aanwezigdatum" (attendance_date)`},
		{name: "attendance remark without attendance", rec: []string{"p1", "E-1", "", "ja", "", "", "", "", "", "", "laat"}, wantErr: `column "Aanwezig" (attendance) is empty but its date or remark is filled`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Parse(tt.rec)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParserPassValues(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Columns = Columns{Person: "p", Passed: "g"}
	s.ElearningCodeDefault = "E-DEFAULT"
	p, err := NewParser(s, time.UTC, []string{"p", "g"}, testNow)
	require.NoError(t, err)
	for _, v := range []string{"ja", "J", "true", "1", "Yes", "y", "geslaagd", "VOLDOENDE", "passed", " Behaald "} {
		c, err := p.Parse([]string{"x", v})
		require.NoError(t, err, v)
		assert.True(t, c.Passed, v)
		assert.Equal(t, "E-DEFAULT", c.ElearningCode)
	}
	for _, v := range []string{"nee", "N", "false", "0", "no", "niet geslaagd", "Niet  Geslaagd", "gezakt", "onvoldoende", "FAILED", "niet behaald"} {
		c, err := p.Parse([]string{"x", v})
		require.NoError(t, err, v)
		assert.False(t, c.Passed, v)
	}
}

func TestParserCodeColumnFallsBackToDefault(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Columns = Columns{Person: "p", Passed: "g", ElearningCode: "c"}
	s.ElearningCodeDefault = "E-DEFAULT"
	p, err := NewParser(s, time.UTC, []string{"p", "g", "c"}, testNow)
	require.NoError(t, err)
	c, err := p.Parse([]string{"x", "ja", ""})
	require.NoError(t, err)
	assert.Equal(t, "E-DEFAULT", c.ElearningCode)
	c, err = p.Parse([]string{"x", "ja", "E-ROW"})
	require.NoError(t, err)
	assert.Equal(t, "E-ROW", c.ElearningCode)
}

func TestNewParserHeader(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Columns = Columns{Person: "Deelnemer", ElearningCode: "Code", Passed: "Geslaagd", Remark: "Opmerking"}

	t.Run("case, spaces and byte-order mark do not matter", func(t *testing.T) {
		t.Parallel()
		p, err := NewParser(s, time.UTC, []string{"\ufeff deelnemer", "CODE ", "Extra", "geslaagd", " OPMERKING"}, testNow)
		require.NoError(t, err)
		c, err := p.Parse([]string{"p1", "E", "x", "ja", "hoi"})
		require.NoError(t, err)
		assert.Equal(t, result.Completion{PersonID: "p1", ElearningCode: "E", Passed: true, Remark: "hoi"}, c)
	})
	t.Run("missing columns are named with the headers found", func(t *testing.T) {
		t.Parallel()
		_, err := NewParser(s, time.UTC, []string{"Naam", "Code"}, testNow)
		var he *HeaderError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, []string{`person ("Deelnemer")`, `passed ("Geslaagd")`}, he.Missing, "remark is optional by default")
		assert.EqualError(t, err, `header unusable: missing columns person ("Deelnemer"), passed ("Geslaagd"); headers found: "Naam", "Code"`)
	})
	t.Run("a configured column twice is ambiguous", func(t *testing.T) {
		t.Parallel()
		_, err := NewParser(s, time.UTC, []string{"Deelnemer", "Code", "Geslaagd", "Opmerking", "deelnemer"}, testNow)
		var he *HeaderError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, []string{`"Deelnemer"`}, he.Duplicated)
		assert.Empty(t, he.Missing)
	})
}

// testNow is the moment the parser tests read their files.
var testNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// TestExcelNLConventions covers what Dutch Excel writes (issue 16, item 4):
// WAAR/ONWAAR, a trailing delimiter on data rows only, a missing optional
// column.
func TestExcelNLConventions(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Columns = Columns{Person: "Deelnemer", ElearningCode: "Code", Passed: "Geslaagd", Remark: "Opmerking"}

	p, err := NewParser(s, time.UTC, []string{"Deelnemer", "Code", "Geslaagd"}, testNow)
	require.NoError(t, err, "remark is optional by default")
	assert.Equal(t, []string{`remark ("Opmerking")`}, p.Absent())

	for v, want := range map[string]bool{"WAAR": true, "waar": true, "ONWAAR": false, "TRUE": true, "FALSE": false} {
		c, err := p.Parse([]string{"p1", "E", v})
		require.NoError(t, err, v)
		assert.Equal(t, want, c.Passed, v)
	}
	c, err := p.Parse([]string{"p1", "E", "WAAR", ""})
	require.NoError(t, err, "a trailing delimiter adds one empty field")
	assert.Equal(t, "p1", c.PersonID)
	_, err = p.Parse([]string{"p1", "E", "WAAR", "x"})
	assert.ErrorContains(t, err, "row has 4 fields, the header has 3", "an extra field with a value is not a trailing delimiter")

	s.OptionalColumns = nil
	_, err = NewParser(s, time.UTC, []string{"Deelnemer", "Code", "Geslaagd"}, testNow)
	assert.ErrorContains(t, err, `missing columns remark ("Opmerking")`, "optional_columns replaces the default")
}

// TestPlausibility covers issue 16, item 5: dates in the future or before the
// floor, grades out of range, numbers with both separators.
func TestPlausibility(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Columns = Columns{Person: "p", ElearningCode: "c", Passed: "g", CompletedAt: "d", ResultDecimal: "r"}
	header := []string{"p", "c", "g", "d", "r"}
	parse := func(s Settings, date, grade string) (result.Completion, error) {
		p, err := NewParser(s, time.UTC, header, testNow)
		require.NoError(t, err)
		return p.Parse([]string{"p1", "E", "ja", date, grade})
	}

	_, err := parse(s, "08-12-2026", "7")
	assert.NoError(t, err, "tomorrow is within the day of clock skew")
	_, err = parse(s, "01-01-2099", "7")
	assert.ErrorContains(t, err, `column "d" (completed_at): "01-01-2099" lies in the future`)
	_, err = parse(s, "31-12-1999", "7")
	assert.ErrorContains(t, err, `"31-12-1999" is before 2000-01-01 (see plausible.earliest_date)`)
	_, err = parse(s, "", "-1")
	assert.ErrorContains(t, err, `column "r" (result_decimal): -1 is below plausible.grade_min 0`)
	_, err = parse(s, "", "1.234,5")
	assert.ErrorContains(t, err, "ambiguous; set thousands_separator")

	s.ThousandsSeparator = "."
	c, err := parse(s, "", "1.234,5")
	require.NoError(t, err, "a declared thousands separator resolves it")
	assert.Equal(t, "1234.5", c.ResultDecimal)

	s.Plausible = Plausibility{GradeMin: "1", GradeMax: "10"}
	_, err = parse(s, "01-01-1990", "10,5")
	assert.ErrorContains(t, err, "10.5 is above plausible.grade_max 10")
	c, err = parse(s, "01-01-1990", "10")
	require.NoError(t, err, "an empty earliest_date accepts any date")
	assert.Equal(t, 1990, c.CompletedAt.Year())
}

func TestParseDecimalThousandsDeclared(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"1.234,5": "1234.5", "1.234": "1234", "7,5": "7.5", "1.234.567": "1234567"} {
		got, err := ParseDecimal(in, '.')
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, want := range map[string]string{"1,234.5": "1234.5", "1,234": "1234", "7.5": "7.5"} {
		got, err := ParseDecimal(in, ',')
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"7.5", "1,234.5", "12.34,5"} {
		_, err := ParseDecimal(bad, '.')
		assert.ErrorIs(t, err, ErrDecimal, bad)
	}
}
