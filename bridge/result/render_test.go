package result_test

import (
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/result")

// goldenDir holds the exact XML the seed examples must produce.
var goldenDir = filepath.Join("..", "..", "testdata", "result")

var amsterdam = result.DefaultOptions().Location

// bundledSchema parses the embedded XSD for one test and closes it after.
func bundledSchema(t testing.TB) *xsdschema.Schema {
	t.Helper()
	s, err := xsdschema.Bundled()
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// newRenderer returns a Renderer with opts and the bundled schema.
func newRenderer(t testing.TB, opts result.Options) *result.Renderer {
	t.Helper()
	r, err := result.NewRenderer(opts, bundledSchema(t))
	require.NoError(t, err)
	return r
}

// seedCompletion is the completion behind Coachview's first example.
func seedCompletion() result.Completion {
	return result.Completion{
		PersonID:      "p12345",
		ElearningCode: "e12345",
		CompletedAt:   time.Date(2019, 1, 3, 16, 45, 0, 0, amsterdam),
		Remark:        "Opmerking",
		Passed:        true,
		ResultText:    "67%",
		ResultDate:    time.Date(2019, 3, 1, 9, 30, 0, 0, amsterdam),
		ResultRemark:  "Voldoende",
		SourceRef:     "seed 001 example 1",
	}
}

// document is the parsed form of a rendered result, for asserting values.
type document struct {
	XMLName          xml.Name `xml:"CoachviewResultaat"`
	Datum            string   `xml:"Datum,attr"`
	Opmerking        string   `xml:"Opmerking,attr"`
	Elearningcode    string   `xml:"Elearningcode,attr"`
	PersoonExterneId string   `xml:"PersoonExterneId,attr"`
	Geslaagd         struct {
		Value             string `xml:",chardata"`
		Resultaat         string `xml:"Resultaat,attr"`
		ResultaatDecimaal string `xml:"ResultaatDecimaal,attr"`
		Datum             string `xml:"Datum,attr"`
		Opmerking         string `xml:"Opmerking,attr"`
	} `xml:"Geslaagd"`
	Aanwezig *struct {
		Value     string `xml:",chardata"`
		Datum     string `xml:"Datum,attr"`
		Opmerking string `xml:"Opmerking,attr"`
	} `xml:"Aanwezig"`
}

func render(t *testing.T, r *result.Renderer, c result.Completion) (string, document) {
	t.Helper()
	out, err := r.Render(c)
	require.NoError(t, err)
	var d document
	require.NoError(t, xml.Unmarshal(out, &d), "rendered XML:\n%s", out)
	return string(out), d
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	withAttendance := result.DefaultOptions()
	withAttendance.Attendance = true

	cases := []struct {
		name   string
		golden string
		opts   result.Options
		edit   func(*result.Completion)
	}{
		{"seed example 1: free-text result", "seed1.xml", result.DefaultOptions(), func(*result.Completion) {}},
		{"seed example 2: decimal result", "seed2.xml", result.DefaultOptions(), func(c *result.Completion) {
			c.ResultText = ""
			c.ResultDecimal = "6.7"
		}},
		{"attendance enabled", "attendance.xml", withAttendance, func(c *result.Completion) {
			c.Attendance = &result.Attendance{
				Present: true,
				Date:    time.Date(2019, 1, 3, 8, 0, 0, 0, amsterdam),
				Remark:  "Aanwezig bij de bijeenkomst",
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := seedCompletion()
			tc.edit(&c)
			got, err := newRenderer(t, tc.opts).Render(c)
			require.NoError(t, err)

			path := filepath.Join(goldenDir, tc.golden)
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
		})
	}
}

func TestGoldenFilesValidate(t *testing.T) {
	t.Parallel()
	schema := bundledSchema(t)
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.xml"))
	require.NoError(t, err)
	require.Len(t, paths, 3)
	for _, path := range paths {
		doc, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.NoError(t, schema.Validate(doc), path)
	}
}

func TestRenderRejects(t *testing.T) {
	t.Parallel()
	attendanceOn := result.DefaultOptions()
	attendanceOn.Attendance = true

	cases := []struct {
		name string
		opts *result.Options // nil: DefaultOptions
		edit func(*result.Completion)
		want string // the CheckError's Error()
	}{
		{"missing Elearningcode", nil, func(c *result.Completion) { c.ElearningCode = "" },
			"Elearningcode: required"},
		{"Elearningcode of spaces only", nil, func(c *result.Completion) { c.ElearningCode = " \t " },
			"Elearningcode: required"},
		{"missing PersoonExterneId", nil, func(c *result.Completion) { c.PersonID = "" },
			"PersoonExterneId: required"},
		{"Elearningcode of 51 characters", nil, func(c *result.Completion) { c.ElearningCode = strings.Repeat("e", 51) },
			"Elearningcode: is 51 characters long; at most 50 allowed"},
		{"PersoonExterneId of 51 characters", nil, func(c *result.Completion) { c.PersonID = strings.Repeat("ë", 51) },
			"PersoonExterneId: is 51 characters long; at most 50 allowed"},
		{"Opmerking of 256 characters", nil, func(c *result.Completion) { c.Remark = strings.Repeat("r", 256) },
			"Opmerking: is 256 characters long; at most 255 allowed"},
		{"Geslaagd/@Opmerking of 256 characters", nil, func(c *result.Completion) { c.ResultRemark = strings.Repeat("ĳ", 256) },
			"Geslaagd/@Opmerking: is 256 characters long; at most 255 allowed"},
		{"Aanwezig/@Opmerking of 256 characters", &attendanceOn, func(c *result.Completion) {
			c.Attendance = &result.Attendance{Present: true, Remark: strings.Repeat("a", 256)}
		}, "Aanwezig/@Opmerking: is 256 characters long; at most 255 allowed"},
		{"both Resultaat and ResultaatDecimaal", nil, func(c *result.Completion) { c.ResultDecimal = "7.5" },
			"Geslaagd: Resultaat and ResultaatDecimaal are both set; Coachview accepts only one of them"},
		{"junk decimal", nil, func(c *result.Completion) { c.ResultText, c.ResultDecimal = "", "zeven" },
			`Geslaagd/@ResultaatDecimaal: "zeven" is not a decimal number: expected digits with an optional sign and a '.' separator, such as 7.5`},
		{"decimal comma", nil, func(c *result.Completion) { c.ResultText, c.ResultDecimal = "", "7,5" },
			`Geslaagd/@ResultaatDecimaal: "7,5" is not a decimal number: expected digits with an optional sign and a '.' separator, such as 7.5`},
		{"bell in Opmerking", nil, func(c *result.Completion) { c.Remark = "ok\a" },
			"Opmerking: contains control character U+0007 at character 3; XML 1.0 cannot carry it"},
		{"NUL in Resultaat", nil, func(c *result.Completion) { c.ResultText = "\x0067%" },
			"Geslaagd/@Resultaat: contains control character U+0000 at character 1; XML 1.0 cannot carry it"},
		{"escape in Geslaagd/@Opmerking after accented text", nil, func(c *result.Completion) { c.ResultRemark = "Ä\x1b" },
			"Geslaagd/@Opmerking: contains control character U+001B at character 2; XML 1.0 cannot carry it"},
		{"form feed in Aanwezig/@Opmerking", &attendanceOn, func(c *result.Completion) {
			c.Attendance = &result.Attendance{Remark: "\f"}
		}, "Aanwezig/@Opmerking: contains control character U+000C at character 1; XML 1.0 cannot carry it"},
		{"control character in Elearningcode", nil, func(c *result.Completion) { c.ElearningCode = "e1\x02" },
			"Elearningcode: contains control character U+0002 at character 3; XML 1.0 cannot carry it"},
		{"invalid UTF-8 in PersoonExterneId", nil, func(c *result.Completion) { c.PersonID = "p\xff1" },
			"PersoonExterneId: is not valid UTF-8 (byte 0xFF at offset 1)"},
		{"Latin-1 byte in Opmerking", nil, func(c *result.Completion) { c.Remark = "caf\xe9" },
			"Opmerking: is not valid UTF-8 (byte 0xE9 at offset 3)"},
		{"non-character U+FFFE", nil, func(c *result.Completion) { c.ResultText = "a\uFFFE" },
			"Geslaagd/@Resultaat: contains non-character U+FFFE at character 2; XML 1.0 cannot carry it"},
		{"completion date beyond year 9999", nil, func(c *result.Completion) {
			c.CompletedAt = time.Date(10000, 1, 1, 12, 0, 0, 0, time.UTC)
		}, "Datum: year 10000 is outside 1 to 9999"},
		{"result date in year 0", nil, func(c *result.Completion) {
			c.ResultDate = time.Date(0, 6, 1, 12, 0, 0, 0, time.UTC)
		}, "Geslaagd/@Datum: year 0 is outside 1 to 9999"},
		{"attendance date beyond year 9999", &attendanceOn, func(c *result.Completion) {
			c.Attendance = &result.Attendance{Date: time.Date(10000, 1, 1, 12, 0, 0, 0, time.UTC)}
		}, "Aanwezig/@Datum: year 10000 is outside 1 to 9999"},
		{"LMS data unreadable", nil, func(c *result.Completion) { c.Unreadable = "score.raw is \"8O\"" },
			`LMS data: score.raw is "8O"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := result.DefaultOptions()
			if tc.opts != nil {
				opts = *tc.opts
			}
			c := seedCompletion()
			tc.edit(&c)
			out, err := newRenderer(t, opts).Render(c)
			assert.Nil(t, out)
			checkErr, ok := errors.AsType[*result.CheckError](err)
			require.True(t, ok, "want a *CheckError, got %v", err)
			assert.Equal(t, tc.want, checkErr.Error())
		})
	}
}

func TestRenderAccepts(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, result.DefaultOptions())

	t.Run("identifiers are sent trimmed", func(t *testing.T) {
		t.Parallel()
		c := seedCompletion()
		c.ElearningCode, c.PersonID = "  e12345\t", "\np12345 "
		_, d := render(t, r, c)
		assert.Equal(t, "e12345", d.Elearningcode)
		assert.Equal(t, "p12345", d.PersoonExterneId)
	})
	t.Run("limits count characters, not bytes, and the XSD agrees", func(t *testing.T) {
		t.Parallel()
		c := seedCompletion()
		c.ElearningCode = strings.Repeat("ë", 50)
		c.PersonID = strings.Repeat("Ä", 50)
		c.Remark = strings.Repeat("ĳ", 255)
		c.ResultRemark = strings.Repeat("€", 255)
		_, d := render(t, r, c)
		assert.Equal(t, c.Remark, d.Opmerking)
	})
	t.Run("more than two decimals are rounded, not rejected", func(t *testing.T) {
		t.Parallel()
		c := seedCompletion()
		c.ResultText, c.ResultDecimal = "", " 7.456 "
		_, d := render(t, r, c)
		assert.Equal(t, "7.46", d.Geslaagd.ResultaatDecimaal)
	})
	t.Run("not passed and no optional fields", func(t *testing.T) {
		t.Parallel()
		out, _ := render(t, r, result.Completion{PersonID: "p1", ElearningCode: "e1"})
		assert.Equal(t, `<?xml version="1.0" encoding="UTF-8"?>
<CoachviewResultaat xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Elearningcode="e1" PersoonExterneId="p1">
  <Geslaagd>false</Geslaagd>
</CoachviewResultaat>
`, out)
	})
}

func TestRenderDecimalOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		decimals int
		rounding result.Rounding
		in, want string
	}{
		{"half up, two decimals", 2, result.RoundHalfUp, "6.745", "6.75"},
		{"half up, negative tie", 2, result.RoundHalfUp, "-1.005", "-1.01"},
		{"half even, two decimals", 2, result.RoundHalfEven, "6.745", "6.74"},
		{"down, two decimals", 2, result.RoundDown, "6.749", "6.74"},
		{"half up, one decimal", 1, result.RoundHalfUp, "6.75", "6.8"},
		{"half up, whole numbers", 0, result.RoundHalfUp, "7.5", "8"},
		{"canonical form", 2, result.RoundHalfUp, "8.00", "8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := result.DefaultOptions()
			opts.Decimals, opts.Rounding = tc.decimals, tc.rounding
			c := seedCompletion()
			c.ResultText, c.ResultDecimal = "", tc.in
			_, d := render(t, newRenderer(t, opts), c)
			assert.Equal(t, tc.want, d.Geslaagd.ResultaatDecimaal)
		})
	}
}

func TestRenderDatesInProviderTimeZone(t *testing.T) {
	t.Parallel()
	newYork, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)

	cases := []struct {
		name string
		loc  *time.Location
		at   time.Time
		want string
	}{
		{"winter: 23:30 UTC on new year's eve is next year in Amsterdam", amsterdam,
			time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), "2026-01-01"},
		{"winter: 22:30 UTC is still the same day in Amsterdam", amsterdam,
			time.Date(2025, 12, 31, 22, 30, 0, 0, time.UTC), "2025-12-31"},
		{"summer time: 22:30 UTC is the next day (UTC+2)", amsterdam,
			time.Date(2025, 6, 30, 22, 30, 0, 0, time.UTC), "2025-07-01"},
		{"summer time: 21:30 UTC is the same day (UTC+2)", amsterdam,
			time.Date(2025, 6, 30, 21, 30, 0, 0, time.UTC), "2025-06-30"},
		{"night summer time starts: 23:30 UTC is 00:30 CET", amsterdam,
			time.Date(2025, 3, 29, 23, 30, 0, 0, time.UTC), "2025-03-30"},
		{"night summer time ends: 22:30 UTC is 00:30 CEST", amsterdam,
			time.Date(2025, 10, 25, 22, 30, 0, 0, time.UTC), "2025-10-26"},
		{"night summer time ends: 21:30 UTC is 23:30 CEST", amsterdam,
			time.Date(2025, 10, 25, 21, 30, 0, 0, time.UTC), "2025-10-25"},
		{"another provider time zone", newYork,
			time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), "2025-12-31"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := result.DefaultOptions()
			opts.Location = tc.loc
			opts.Attendance = true
			c := seedCompletion()
			c.CompletedAt, c.ResultDate = tc.at, tc.at
			c.Attendance = &result.Attendance{Present: true, Date: tc.at}
			_, d := render(t, newRenderer(t, opts), c)
			assert.Equal(t, tc.want, d.Datum)
			assert.Equal(t, tc.want, d.Geslaagd.Datum)
			require.NotNil(t, d.Aanwezig)
			assert.Equal(t, tc.want, d.Aanwezig.Datum)
		})
	}
}

func TestRenderEscaping(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, result.DefaultOptions())
	c := seedCompletion()
	c.ElearningCode = `e&<1>`
	c.PersonID = `"Ä'ë"`
	c.Remark = `Jan & "Piet" <de 'Vries'>`
	c.ResultText = "Ä ë ĳ 100%"
	c.ResultRemark = "regel 1\nregel 2\tmet tab\r\n"

	out, d := render(t, r, c)
	assert.Contains(t, out, ` Opmerking="Jan &amp; &#34;Piet&#34; &lt;de &#39;Vries&#39;&gt;"`)
	assert.Contains(t, out, ` Elearningcode="e&amp;&lt;1&gt;" PersoonExterneId="&#34;Ä&#39;ë&#34;"`)
	assert.Contains(t, out, ` Resultaat="Ä ë ĳ 100%"`)
	assert.Contains(t, out, ` Opmerking="regel 1&#xA;regel 2&#x9;met tab&#xD;&#xA;"`)
	// What a parser reads back is exactly what was sent, including the line
	// breaks and tab that attribute normalisation would otherwise flatten.
	assert.Equal(t, c.Remark, d.Opmerking)
	assert.Equal(t, c.ElearningCode, d.Elearningcode)
	assert.Equal(t, c.PersonID, d.PersoonExterneId)
	assert.Equal(t, c.ResultText, d.Geslaagd.Resultaat)
	assert.Equal(t, c.ResultRemark, d.Geslaagd.Opmerking)
}

func TestRenderAttendance(t *testing.T) {
	t.Parallel()
	on := result.DefaultOptions()
	on.Attendance = true
	attendance := &result.Attendance{Present: false, Date: time.Date(2019, 1, 2, 10, 0, 0, 0, amsterdam), Remark: "Afwezig & afgemeld"}

	cases := []struct {
		name       string
		opts       result.Options
		attendance *result.Attendance
		wantLine   string // "" means no Aanwezig element
	}{
		{"enabled and set", on, attendance,
			`  <Aanwezig Datum="2019-01-02" Opmerking="Afwezig &amp; afgemeld">false</Aanwezig>` + "\n"},
		{"enabled, only presence", on, &result.Attendance{Present: true}, "  <Aanwezig>true</Aanwezig>\n"},
		{"enabled but not set", on, nil, ""},
		{"disabled", result.DefaultOptions(), attendance, ""},
		{"disabled ignores an attendance that would be invalid", result.DefaultOptions(),
			&result.Attendance{Remark: strings.Repeat("x", 300) + "\a"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := seedCompletion()
			c.Attendance = tc.attendance
			out, d := render(t, newRenderer(t, tc.opts), c)
			if tc.wantLine == "" {
				assert.NotContains(t, out, "Aanwezig")
				assert.Nil(t, d.Aanwezig)
				return
			}
			assert.Contains(t, out, "</Geslaagd>\n"+tc.wantLine+"</CoachviewResultaat>\n")
		})
	}
}

func TestRenderConcurrent(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, result.DefaultOptions())
	want, err := os.ReadFile(filepath.Join(goldenDir, "seed1.xml"))
	require.NoError(t, err)

	const workers, rounds = 8, 100
	var wg sync.WaitGroup
	errs := make(chan string, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				c := seedCompletion()
				if (w+i)%2 == 1 {
					c.PersonID = ""
					if _, err := r.Render(c); err == nil || err.Error() != "PersoonExterneId: required" {
						errs <- "invalid completion: got " + errString(err)
					}
					continue
				}
				got, err := r.Render(c)
				if err != nil || string(got) != string(want) {
					errs <- "valid completion: got " + errString(err) + "\n" + string(got)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// FuzzRender checks that the business checks catch everything the bundled
// XSD would reject: a Completion either fails a check or renders a document
// the schema accepts, never an XSD rejection.
func FuzzRender(f *testing.F) {
	f.Add("e12345", "p12345", "Opmerking", "67%", "", "Voldoende", "Aanwezig")
	f.Add(" e1 ", "p\xff", "a\x07b", "", "6.745", "Ä ë ĳ", "\r\n\t")
	f.Add("e&<>", `"'`, "\uFFFE", "", "-1.005", "", "")
	opts := result.DefaultOptions()
	opts.Attendance = true
	r := newRenderer(f, opts)
	f.Fuzz(func(t *testing.T, code, person, remark, text, decimal, resultRemark, attendanceRemark string) {
		c := result.Completion{
			ElearningCode: code, PersonID: person, Remark: remark,
			ResultText: text, ResultDecimal: decimal, ResultRemark: resultRemark,
			Attendance: &result.Attendance{Present: true, Remark: attendanceRemark},
		}
		_, err := r.Render(c)
		if err == nil {
			return
		}
		checkErr, ok := errors.AsType[*result.CheckError](err)
		require.True(t, ok, "want a *CheckError, got %v", err)
		assert.NotEqual(t, result.FieldXSD, checkErr.Field, "business checks let through: %v", err)
	})
}

func BenchmarkRender(b *testing.B) {
	r := newRenderer(b, result.DefaultOptions())
	c := seedCompletion()
	c.ResultText, c.ResultDecimal = "", "7.456"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Render(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderParallel(b *testing.B) {
	r := newRenderer(b, result.DefaultOptions())
	c := seedCompletion()
	c.ResultText, c.ResultDecimal = "", "7.456"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Render(c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
