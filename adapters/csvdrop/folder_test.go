package csvdrop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// env is a drop folder in a temporary directory with a source and a sink.
type env struct {
	t    *testing.T
	base string
	drop string
	conn testConn
	f    *Folder
	clk  *clock.Fake
	sink *kittest.Sink
	logs *bytes.Buffer
}

const dutchColumns = `  columns:
    person: Deelnemer
    elearningcode: Code
    completed_at: Datum
    passed: Geslaagd
    result_decimal: Cijfer
    remark: Opmerking
`

// newEnv builds a source over <tmp>/drop with the given settings (indented
// two spaces, without folder). The clock stands an hour ahead, so files just
// written have settled.
func newEnv(t *testing.T, settings string) *env {
	t.Helper()
	base := t.TempDir()
	drop := filepath.Join(base, "drop")
	require.NoError(t, os.Mkdir(drop, 0o755))
	c := connection(t, base, "  folder: drop\n"+settings)
	logs := &bytes.Buffer{}
	c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	clk := clock.NewFake(time.Now().Add(time.Hour))
	f := newTestFolder(t, c, clk)
	return &env{t: t, base: base, drop: drop, conn: c, f: f, clk: clk, sink: kittest.NewSink(), logs: logs}
}

// restart replaces the source by a new one of the same connection, as a
// reload or a restart of the daemon does; the sink (the outbox) stays.
func (e *env) restart() {
	e.t.Helper()
	e.f = newTestFolder(e.t, e.conn, e.clk)
}

func (e *env) write(name, content string) {
	e.t.Helper()
	require.NoError(e.t, os.WriteFile(filepath.Join(e.drop, name), []byte(content), 0o644))
}

func (e *env) poll() error { return e.f.Poll(context.Background(), e.sink) }

// files lists the names of the files in a directory below the drop folder
// ("" = the drop folder), but for the adapter's own lists of recent takes
// (recentName, in the processed directory).
func (e *env) files(sub string) []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.drop, sub))
	require.NoError(e.t, err)
	var names []string
	for _, en := range entries {
		if !en.IsDir() && !strings.HasPrefix(en.Name(), recentPrefix) {
			names = append(names, en.Name())
		}
	}
	return names
}

// errorsFile reads an errors file below the drop folder, without its header.
func (e *env) errorsFile(rel string) [][]string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.drop, rel))
	require.NoError(e.t, err)
	require.True(e.t, bytes.HasPrefix(b, utf8BOM), "errors file starts with a byte-order mark for Excel")
	r := csv.NewReader(bytes.NewReader(b[len(utf8BOM):]))
	r.Comma = ';'
	recs, err := r.ReadAll()
	require.NoError(e.t, err)
	require.NotEmpty(e.t, recs)
	assert.Equal(e.t, []string{"line", "reason", "raw row"}, recs[0])
	return recs[1:]
}

func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "csvdrop", name))
	require.NoError(t, err)
	return string(b)
}

func TestPollEncodingsAndDelimiters(t *testing.T) {
	t.Parallel()
	loc := amsterdam(t)
	day := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, loc) }
	tests := []struct {
		name     string
		settings string
		file     string
		content  string
		want     []result.Completion
	}{
		{
			name: "utf-8 with byte-order mark, comma, CRLF, quoted comma and newline, zone",
			settings: `  columns:
    person: PersonId
    elearningcode: Course
    completed_at: Completed
    passed: Passed
    result: Score
    remark: Remark
`,
			file:    "utf8-bom-comma.csv",
			content: sample(t, "utf8-bom-comma.csv"),
			want: []result.Completion{
				{PersonID: "p-001", ElearningCode: "ONB-2024", CompletedAt: day(2024, 3, 11, 0, 30), Passed: true, ResultText: "85%", Remark: "José, fast", SourceRef: "utf8-bom-comma.csv:2"},
				{PersonID: "p-002", ElearningCode: "ONB-2024", CompletedAt: day(2024, 3, 11, 0, 0), ResultText: "40%", Remark: "line one\nline two", SourceRef: "utf8-bom-comma.csv:3"},
				{PersonID: "p-003", ElearningCode: "ONB-2024", CompletedAt: day(2024, 3, 12, 9, 15), Passed: true, ResultText: "92%", SourceRef: "utf8-bom-comma.csv:5"},
			},
		},
		{
			name: "windows-1252, semicolon, thousands separator",
			settings: `  thousands_separator: "."
  columns:
    person: Deelnemer
    elearningcode: Code
    completed_at: Datum
    passed: Resultaat
    result_decimal: Cijfer
    remark: Opmerking
`,
			file:    "windows1252-semicolon.csv",
			content: sample(t, "windows1252-semicolon.csv"),
			want: []result.Completion{
				{PersonID: "P1", ElearningCode: "EHBO", CompletedAt: day(2024, 3, 1, 0, 0), Passed: true, ResultDecimal: "7.5", Remark: "Café Brontë, eigen bijdrage €50", SourceRef: "windows1252-semicolon.csv:2"},
				{PersonID: "P2", ElearningCode: "EHBO", CompletedAt: day(2024, 3, 2, 0, 0), ResultDecimal: "1234.5", SourceRef: "windows1252-semicolon.csv:3"},
			},
		},
		{
			name: "windows-1252 bytes written here",
			settings: `  elearningcode_default: E-1
  columns:
    person: Cursist
    passed: Geslaagd
    remark: Opmerking
`,
			file:    "w.csv",
			content: "Cursist;Geslaagd;Opmerking\np1;ja;\xe9\xeb\x80 ok\n",
			want:    []result.Completion{{PersonID: "p1", ElearningCode: "E-1", Passed: true, Remark: "éë€ ok", SourceRef: "w.csv:2"}},
		},
		{
			name: "tab, Dutch dates with dots and slashes",
			settings: `  columns:
    person: person
    elearningcode: code
    completed_at: date
    passed: passed
    result_decimal: grade
`,
			file:    "tab.csv",
			content: sample(t, "tab.csv"),
			want: []result.Completion{
				{PersonID: "p1", ElearningCode: "C1", CompletedAt: day(2024, 3, 10, 0, 0), Passed: true, ResultDecimal: "6.5", SourceRef: "tab.csv:2"},
				{PersonID: "p2", ElearningCode: "C1", CompletedAt: day(2024, 3, 10, 0, 0), SourceRef: "tab.csv:3"},
			},
		},
		{
			name:     "explicit encoding is obeyed even for valid UTF-8",
			settings: "  encoding: windows-1252\n  elearningcode_default: E\n  columns:\n    person: p\n    passed: g\n    remark: r\n",
			file:     "mojibake.csv",
			content:  "p;g;r\nx;ja;é\n",
			want:     []result.Completion{{PersonID: "x", ElearningCode: "E", Passed: true, Remark: "Ã©", SourceRef: "mojibake.csv:2"}},
		},
		{
			name:     "explicit delimiter wins over sniffing",
			settings: "  delimiter: \",\"\n  elearningcode_default: E\n  columns:\n    person: p\n    passed: g\n    remark: r;s;t\n",
			file:     "explicit.csv",
			content:  "p,g,r;s;t\nx,nee,a;b\n",
			want:     []result.Completion{{PersonID: "x", ElearningCode: "E", Remark: "a;b", SourceRef: "explicit.csv:2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.settings)
			e.write(tt.file, tt.content)
			require.NoError(t, e.poll())
			require.Len(t, e.sink.Added(), len(tt.want))
			for i := range tt.want {
				assert.Equal(t, tt.want[i].CompletedAt.String(), e.sink.Added()[i].CompletedAt.String(), "row %d date", i)
				e.sink.Added()[i].CompletedAt = tt.want[i].CompletedAt // compared above; Equal cannot compare zone pointers
			}
			assert.Equal(t, tt.want, e.sink.Added())
			assert.Empty(t, e.files(""), "file moved out of the drop folder")
			assert.Equal(t, []string{tt.file}, e.files("processed"), "no errors file when every row is good")
			assert.Equal(t, 1, e.sink.Commits())
		})
	}
}

// badRowsFile has good rows, bad rows of each kind and quoted fields that
// span lines, so line numbers are physical lines.
const badRowsFile = "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\n" + // 1
	"p1;C1;10-03-2024;ja;7,5;ok\n" + // 2
	"p2;C1;10-03-2024;ja;7,5;\"twee\n" + // 3
	"regels\"\n" + // 4
	"p3;C1;31-02-2024;ja;7,5;bad date\n" + // 5
	"p4;C1;10-03-2024;misschien;7,5;bad pass\n" + // 6
	"p5;C1;10-03-2024;ja;7,5,5;bad decimal\n" + // 7
	";C1;10-03-2024;ja;7;no person\n" + // 8
	"p7;;10-03-2024;ja;7;no code\n" + // 9
	"p8;C1;10-03-2024;ja\n" + // 10
	";;;;;\n" + // 11: blank, skipped
	"p9;C1;\"10-03-2024;ja;7;\"bare\"x\"\n" + // 12
	"p10;C1;\"multi\n" + // 13
	"line\";ja;7;x\n" + // 14
	"p11;C1;11-03-2024;nee;5;last good\n" // 15

func TestPollBadRowsReportedGoodRowsCommitted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("mixed.csv", badRowsFile)
	require.NoError(t, e.poll())

	refs := make([]string, len(e.sink.Added()))
	for i, c := range e.sink.Added() {
		refs[i] = c.SourceRef
	}
	assert.Equal(t, []string{"mixed.csv:2", "mixed.csv:3", "mixed.csv:15"}, refs)
	assert.Equal(t, "twee\nregels", e.sink.Added()[1].Remark)
	assert.Equal(t, []string{"mixed.csv", "mixed.csv.errors.csv"}, e.files("processed"))
	assert.Empty(t, e.files("failed"))
	assert.Empty(t, e.files(""), "no temporary errors file left behind")

	errs := e.errorsFile("processed/mixed.csv.errors.csv")
	wantErrs := []struct{ line, reason string }{
		{"5", `column "Datum" (completed_at): "31-02-2024" is not a date`},
		{"6", `column "Geslaagd" (passed): "misschien" is neither one of passed_values nor of failed_values`},
		{"7", `column "Cijfer" (result_decimal): "7,5,5": not a decimal number`},
		{"8", `column "Deelnemer" (person) is empty`},
		{"9", `column "Code" (elearningcode) is empty`},
		{"10", "row has 4 fields, the header has 6"},
		{"12", `parse error on line 12, column 24: extraneous or missing " in quoted-field`},
		{"13", `column "Datum" (completed_at): "multi\nline" is not a date`},
	}
	require.Len(t, errs, len(wantErrs))
	for i, w := range wantErrs {
		assert.Equal(t, w.line, errs[i][0], "line of error %d", i)
		assert.Contains(t, errs[i][1], w.reason, "reason of line %s", w.line)
	}
	assert.Equal(t, "p3;C1;31-02-2024;ja;7,5;bad date", errs[0][2])
	assert.Equal(t, "p10;C1;\"multi\nline\";ja;7;x", errs[7][2])

	logs := e.logs.String()
	assert.Equal(t, detailedBadRows, strings.Count(logs, `"msg":"bad row skipped"`), "only the first bad rows are logged one by one")
	assert.Contains(t, logs, `"file":"mixed.csv","line":5,"reason":"column \"Datum\" (completed_at)`)
	assert.Contains(t, logs, `"bad_rows":8`)
	assert.Contains(t, logs, `"rows":3`)
	assert.Contains(t, logs, `"errors_file":"mixed.csv.errors.csv"`)
	assert.NotContains(t, logs, "p3", "no person ids in the log")
	assert.Equal(t, []source.Problems{{BadRows: 8, Last: "mixed.csv: 8 bad rows skipped; see processed/mixed.csv.errors.csv"}},
		e.sink.Problems(), "the bad rows are reported to the sink, for the dashboard")
}

func TestPollOnlyBadRowsFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("bad.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;gisteren;ja;7;\np2;C1;;wellicht;7;\n")
	require.NoError(t, e.poll())

	assert.Equal(t, []string{"bad.csv", "bad.csv.errors.csv"}, e.files("failed"))
	assert.Empty(t, e.files("processed"))
	assert.Zero(t, e.sink.Commits(), "nothing committed, so the mark is not stored")
	assert.Empty(t, e.sink.Marks())
	errs := e.errorsFile("failed/bad.csv.errors.csv")
	require.Len(t, errs, 2)
	assert.Equal(t, "2", errs[0][0])
	assert.Equal(t, "3", errs[1][0])
	require.Len(t, e.sink.Problems(), 1, "the failed file is reported to the sink, for the dashboard")
	assert.Equal(t, 1, e.sink.Problems()[0].FailedFiles)
	assert.Zero(t, e.sink.Problems()[0].BadRows)
	assert.Contains(t, e.sink.Problems()[0].Last, "bad.csv failed, no row enqueued: ")
	assert.Contains(t, e.sink.Problems()[0].Last, "; moved to failed/bad.csv")
	assert.NotContains(t, e.sink.Problems()[0].Last, "p1", "no person ids")

	// Dropped again unchanged (say after fixing date_formats), it is read again.
	e.write("bad.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;gisteren;ja;7;\np2;C1;;wellicht;7;\n")
	require.NoError(t, e.poll())
	assert.Len(t, e.files("failed"), 4)
}

func TestPollUnusableFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings string
		content  string
		line     string
		reason   []string
	}{
		{
			name:    "missing header column",
			content: "Naam;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;10-03-2024;ja;7;\n",
			line:    "1",
			reason:  []string{`missing columns person ("Deelnemer")`, `headers found: "Naam", "Code", "Datum", "Geslaagd", "Cijfer", "Opmerking"`},
		},
		{name: "empty", content: "", line: "1", reason: []string{"file is empty"}},
		{name: "only blank lines", content: "\n\r\n\n", line: "1", reason: []string{"file has no header line"}},
		{
			name:    "header only",
			content: "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\r\n;;;;;\r\n",
			line:    "1",
			reason:  []string{"no usable row in the file: there are no data rows below the header"},
		},
		{name: "broken header", content: "\"Deelnemer;Code\n", line: "1", reason: []string{"header line cannot be read"}},
		{
			name:     "not UTF-8 although configured",
			settings: "  encoding: utf-8\n",
			content:  "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np\xe9;C1;;ja;;\n",
			line:     "0",
			reason:   []string{"file is not valid UTF-8 (encoding: utf-8)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.settings+dutchColumns)
			e.write("x.csv", tt.content)
			require.NoError(t, e.poll())
			assert.Equal(t, []string{"x.csv", "x.csv.errors.csv"}, e.files("failed"))
			assert.Empty(t, e.files(""))
			assert.Zero(t, e.sink.Commits())
			errs := e.errorsFile("failed/x.csv.errors.csv")
			require.Len(t, errs, 1)
			assert.Equal(t, tt.line, errs[0][0])
			for _, r := range tt.reason {
				assert.Contains(t, errs[0][1], r)
			}
			assert.Contains(t, e.logs.String(), `"msg":"file failed: no row enqueued"`)
		})
	}
}

func TestPollDuplicateContentNotEnqueuedTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	content := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;10-03-2024;ja;7,5;\n"
	e.write("week10.csv", content)
	require.NoError(t, e.poll())
	require.Equal(t, 1, e.sink.Count())

	// The same export dropped again under another name, and under the same
	// name (as after a crash between commit and move).
	e.write("week10-again.csv", content)
	e.write("week10.csv", content)
	require.NoError(t, e.poll())
	assert.Equal(t, 1, e.sink.Count(), "not enqueued again")
	assert.Equal(t, 1, e.sink.Commits())
	stamp := e.clk.Now().Format("20060102T150405")
	assert.ElementsMatch(t, []string{"week10.csv", "week10-again.csv", "week10." + stamp + ".csv"}, e.files("processed"))
	assert.Contains(t, e.logs.String(), `"msg":"file has the same content as one processed before; moved without enqueueing","adapter":"csvdrop","file":"week10-again.csv"`)
}

func TestPollNameClashInProcessed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	require.NoError(t, os.MkdirAll(filepath.Join(e.drop, "processed"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.drop, "processed", "r.csv"), []byte("earlier"), 0o644))
	stamp := e.clk.Now().Format("20060102T150405")

	header := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\n"
	e.write("r.csv", header+"p1;C1;;ja;;\np2;C1;;huh;;\n")
	require.NoError(t, e.poll())
	e.write("r.csv", header+"p3;C1;;ja;;\n")
	require.NoError(t, e.poll())

	assert.ElementsMatch(t, []string{
		"r.csv", "r." + stamp + ".csv", "r." + stamp + ".csv.errors.csv", "r." + stamp + "-2.csv",
	}, e.files("processed"))
	old, err := os.ReadFile(filepath.Join(e.drop, "processed", "r.csv"))
	require.NoError(t, err)
	assert.Equal(t, "earlier", string(old), "never overwritten")
	assert.Len(t, e.errorsFile("processed/r."+stamp+".csv.errors.csv"), 1)
	assert.Equal(t, 2, e.sink.Count())
}

func TestPollIgnoresNonCandidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	content := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;;ja;;\n"
	ignored := []string{".hidden.csv", "export.csv.tmp", "export.tmp", "export.csv.part", "download.PART", "~$export.csv", "notes.txt"}
	for _, name := range ignored {
		e.write(name, content)
	}
	require.NoError(t, os.Mkdir(filepath.Join(e.drop, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.drop, "sub", "deep.csv"), []byte(content), 0o644))
	e.write("UPPER.CSV", content+"p2;C1;;ja;;\n")

	require.NoError(t, e.poll())
	assert.Equal(t, 2, e.sink.Count(), "only UPPER.CSV taken")
	assert.ElementsMatch(t, ignored, e.files(""))
	assert.Equal(t, []string{"deep.csv"}, e.files("sub"))
}

func TestPollTakesFilesInNameOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	header := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\n"
	e.write("b.csv", header+"p2;C;;ja;;\n")
	e.write("a.csv", header+"p1;C;;ja;;\n")
	e.write("c.csv", header+"p3;C;;ja;;\n")
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 3)
	assert.Equal(t, "a.csv:2", e.sink.Added()[0].SourceRef)
	assert.Equal(t, "b.csv:2", e.sink.Added()[1].SourceRef)
	assert.Equal(t, "c.csv:2", e.sink.Added()[2].SourceRef)
}

func TestPollWaitsUntilFileSettled(t *testing.T) {
	t.Parallel()
	header := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\n"
	t0 := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)

	t.Run("by modification time", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "  settle: 500ms\n"+dutchColumns)
		path := filepath.Join(e.drop, "growing.csv")
		e.write("growing.csv", header+"p1;C;;ja;;\n")
		require.NoError(t, os.Chtimes(path, t0, t0))
		e.clk.Set(t0.Add(100 * time.Millisecond))
		require.NoError(t, e.poll())
		assert.Zero(t, e.sink.Commits(), "written 100ms ago: still being written")
		assert.Len(t, e.f.recheck, 1, "a running Watch is asked to wake a poll after settle")

		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString("p2;C;;ja;;\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())
		require.NoError(t, os.Chtimes(path, t0, t0.Add(200*time.Millisecond)))
		e.clk.Set(t0.Add(400 * time.Millisecond))
		require.NoError(t, e.poll())
		assert.Zero(t, e.sink.Commits(), "changed 200ms ago")

		e.clk.Set(t0.Add(700 * time.Millisecond))
		require.NoError(t, e.poll())
		assert.Equal(t, 2, e.sink.Count(), "unchanged for 500ms: taken whole")
	})

	t.Run("by observation when the modification time is ahead of the clock", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "  settle: 500ms\n"+dutchColumns)
		path := filepath.Join(e.drop, "skewed.csv")
		future := t0.Add(time.Hour)
		e.write("skewed.csv", header+"p1;C;;ja;;\n")
		require.NoError(t, os.Chtimes(path, future, future))
		e.clk.Set(t0)
		require.NoError(t, e.poll())
		assert.Zero(t, e.sink.Commits())

		// Growing, with the same (skewed) modification time: the wait starts again.
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString("p2;C;;ja;;\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())
		require.NoError(t, os.Chtimes(path, future, future))
		e.clk.Set(t0.Add(300 * time.Millisecond))
		require.NoError(t, e.poll())
		e.clk.Set(t0.Add(600 * time.Millisecond))
		require.NoError(t, e.poll())
		assert.Zero(t, e.sink.Commits(), "unchanged for only 300ms")

		e.clk.Set(t0.Add(800 * time.Millisecond))
		require.NoError(t, e.poll())
		assert.Equal(t, 2, e.sink.Count())
	})

	t.Run("settle 0 takes at once", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "  settle: 0s\n"+dutchColumns)
		e.write("now.csv", header+"p1;C;;ja;;\n")
		require.NoError(t, os.Chtimes(filepath.Join(e.drop, "now.csv"), t0, t0))
		e.clk.Set(t0)
		require.NoError(t, e.poll())
		assert.Equal(t, 1, e.sink.Count())
	})
}

func TestPollSinkFailuresLeaveFileInPlace(t *testing.T) {
	t.Parallel()
	content := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;;ja;;\np2;C1;;hmm;;\n"

	t.Run("commit", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dutchColumns)
		e.write("x.csv", content)
		e.sink.CommitErr = errors.New("database is locked")
		err := e.poll()
		require.ErrorContains(t, err, "x.csv: commit failed, file left in place for the next poll: database is locked")
		assert.Equal(t, []string{"x.csv"}, e.files(""), "file stays, and no temporary errors file is left")
		assert.Empty(t, e.files("processed"))
		assert.Empty(t, e.files("failed"))

		e.sink.CommitErr = nil
		require.NoError(t, e.poll())
		assert.Equal(t, 1, e.sink.Count())
		assert.Equal(t, []string{"x.csv", "x.csv.errors.csv"}, e.files("processed"))
		assert.Len(t, e.errorsFile("processed/x.csv.errors.csv"), 1)
	})

	t.Run("seen", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dutchColumns)
		e.write("x.csv", content)
		e.sink.SeenErr = errors.New("connection refused")
		require.ErrorContains(t, e.poll(), "x.csv: look up content mark: connection refused")
		assert.Equal(t, []string{"x.csv"}, e.files(""))
		assert.Zero(t, e.sink.Commits())
	})
}

func TestPollFileChangedWhileRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	content := "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;;ja;;\n"
	e.write("x.csv", content)
	e.sink.BeforeFill = func() { e.write("x.csv", content+"p2;C1;;ja;;\n") }
	require.NoError(t, e.poll())
	assert.Zero(t, e.sink.Commits(), "a file changed between hashing and reading is not committed")
	assert.Equal(t, []string{"x.csv"}, e.files(""))
	assert.Len(t, e.f.recheck, 1)

	e.sink.BeforeFill = nil
	require.NoError(t, e.poll())
	assert.Equal(t, 2, e.sink.Count())
}

func TestPollFillRepeatedBySink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.sink.FillTwice = true
	e.write("x.csv", badRowsFile)
	require.NoError(t, e.poll())
	assert.Equal(t, 3, e.sink.Count())
	assert.Len(t, e.errorsFile("processed/x.csv.errors.csv"), 8, "bad rows listed once")
}

func TestPollFolderMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	require.NoError(t, os.Remove(e.drop))
	require.ErrorContains(t, e.poll(), "list drop folder")
}

func TestPollCannotCreateProcessedDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("processed", "a file where the directory should be")
	e.write("x.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;;ja;;\n")
	require.ErrorContains(t, e.poll(), "processed_dir "+filepath.Join(e.drop, "processed")+": cannot be used for the files taken: a file that is not a directory is in its place; move it away")
	assert.Zero(t, e.sink.Commits())
}

func TestPollStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("x.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\np1;C1;;ja;;\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, e.f.Poll(ctx, e.sink), context.Canceled)
	assert.Equal(t, []string{"x.csv"}, e.files(""))
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `  columns:
    person: Deelnemer
    elearningcode: Cursuscode
    completed_at: Datum afgerond
    passed: Geslaagd
    result_decimal: Cijfer
    remark: Opmerking
`)
	e.write("example.csv", sample(t, "example.csv"))
	require.NoError(t, e.poll())
	require.Equal(t, 7, e.sink.Count())
	assert.Equal(t, "7.5", e.sink.Added()[0].ResultDecimal)
	assert.Equal(t, "Praktijk; theorie apart afgenomen", e.sink.Added()[3].Remark)
	errs := e.errorsFile("processed/example.csv.errors.csv")
	require.Len(t, errs, 1)
	assert.Equal(t, "7", errs[0][0])
	assert.Contains(t, errs[0][1], `"31-02-2024" is not a date`)
}

// TestPollBoundedMemory checks that rows are streamed: a 200,000-row file
// is committed while the heap stays far below what holding its rows takes
// (about 200 bytes per completion plus its text).
func TestPollBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200,000-row file")
	}
	const rows = 200_000
	const limit = 32 << 20
	e := newEnv(t, dutchColumns)
	e.sink.CountOnly = true
	fh, err := os.Create(filepath.Join(e.drop, "big.csv"))
	require.NoError(t, err)
	w := bufio.NewWriter(fh)
	_, err = w.WriteString("Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\n")
	require.NoError(t, err)
	for i := range rows {
		_, err = fmt.Fprintf(w, "persoon-%07d;CURSUS-%03d;%02d-03-2024 10:%02d;ja;%d,%d;opmerking bij regel %d\n", i, i%500, i%28+1, i%60, i%10, i%7, i)
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, fh.Close())

	var peak uint64
	samples := 0
	e.sink.OnAdd = func(n int) {
		if n%20_000 != 0 {
			return
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		samples++
	}
	require.NoError(t, e.poll())
	assert.Equal(t, rows, e.sink.Count())
	assert.Equal(t, rows/20_000, samples)
	t.Logf("peak %d MB", peak>>20)
	assert.Less(t, peak, uint64(limit), "heap in use while reading %d rows", rows)
}
