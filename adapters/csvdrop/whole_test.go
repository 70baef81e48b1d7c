package csvdrop

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
	"github.com/cvbridge/cvbridge/bridge/result"
)

// header lacks the optional Opmerking column.
const header = "Deelnemer;Code;Datum;Geslaagd;Cijfer\n"

// TestUnterminatedLastLineWaits: a file whose last line has no line ending is
// being written ("…;7" before ",5" arrives); it is left until it has stood
// still for unterminated_settle, then taken as it is.
func TestUnterminatedLastLineWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	path := filepath.Join(e.drop, "slow.csv")
	e.write("slow.csv", header+"p1;E;01-03-2024;ja;7")
	now := e.clk.Now()
	require.NoError(t, os.Chtimes(path, now, now))

	e.clk.Advance(time.Minute) // well past settle, not past unterminated_settle
	require.NoError(t, e.poll())
	assert.Zero(t, e.sink.Commits(), "a half-written last line is not taken")
	assert.Equal(t, []string{"slow.csv"}, e.files(""))
	assert.Contains(t, e.logs.String(), "its last line has no line ending")

	// The writer finishes the line: taken at once.
	e.write("slow.csv", header+"p1;E;01-03-2024;ja;7,5\n")
	require.NoError(t, os.Chtimes(path, now, now))
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 1)
	assert.Equal(t, "7.5", e.sink.Added()[0].ResultDecimal)

	// A file typed by hand without a final line ending goes once it stood
	// still long enough.
	e.write("hand.csv", header+"p2;E;01-03-2024;ja;6")
	hand := filepath.Join(e.drop, "hand.csv")
	require.NoError(t, os.Chtimes(hand, e.clk.Now(), e.clk.Now()))
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 1)
	e.clk.Advance(2 * time.Minute)
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 2)
	assert.Equal(t, "6", e.sink.Added()[1].ResultDecimal)
}

// TestFileOpenForWritingIsLeft: a file some process holds open for writing is
// never taken, however long it stood still; once closed it is.
func TestFileOpenForWritingIsLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("open.csv", header+"p1;E;01-03-2024;ja;7\n")
	w, err := os.OpenFile(filepath.Join(e.drop, "open.csv"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)

	require.NoError(t, e.poll())
	assert.Zero(t, e.sink.Commits(), "held open for writing")
	assert.Contains(t, e.logs.String(), "open for writing")

	_, err = w.WriteString("p2;E;01-03-2024;ja;8\n")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 2, "taken whole once closed: %s", e.logs.String())

	// A reader does not hold a file back.
	e.write("read.csv", header+"p3;E;01-03-2024;ja;7\n")
	r, err := os.Open(filepath.Join(e.drop, "read.csv"))
	require.NoError(t, err)
	defer func() { _ = r.Close() }()
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 3)
}

// TestFileChangedAfterCommitStays: a writer that appends between the commit
// and the move does not lose its rows: the file stays, is read again, its
// committed rows are offered again (the outbox finds them unchanged) and the
// new rows are queued.
func TestFileChangedAfterCommitStays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	path := filepath.Join(e.drop, "grow.csv")
	e.write("grow.csv", header+"p1;E;01-03-2024;ja;7\n")
	e.sink.AfterCommit = func() {
		e.sink.AfterCommit = nil
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.WriteString("p2;E;01-03-2024;ja;8\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	require.NoError(t, e.poll())
	assert.Equal(t, []string{"grow.csv"}, e.files(""), "left in the drop folder")
	assert.Contains(t, e.logs.String(), "file changed after it was read")

	require.NoError(t, e.poll())
	assert.Equal(t, []string{"grow.csv"}, e.files("processed"))
	var persons []string
	for _, r := range e.sink.Added() {
		persons = append(persons, r.PersonID)
	}
	assert.Equal(t, []string{"p1", "p1", "p2"}, persons, "p1 offered again, p2 added")
}

// TestWriterTracker: inotify tells a file a writer still holds from one it
// closed, whatever user the writer is.
func TestWriterTracker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tr := newWriterTracker()
	ctx, cancel := context.WithCancel(context.Background())
	closed := make(chan string, 10)
	done := make(chan error, 1)
	go func() { done <- tr.run(ctx, dir, func(name string) { closed <- name }) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })

	// Tracking has no readiness signal: write until a close is seen.
	for {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o644))
		select {
		case <-closed:
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	f, err := os.Create(filepath.Join(dir, "a.csv"))
	require.NoError(t, err)
	_, err = f.WriteString(header)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tr.isHeld("a.csv") }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, f.Close())
	for name := range closed {
		if name == "a.csv" {
			break
		}
	}
	assert.False(t, tr.isHeld("a.csv"), "closed after writing")
}

// TestExcelNLFile reads a Dutch Excel export with CR-only line endings,
// WAAR/ONWAAR, a trailing ";" on data rows only and no Opmerking column.
func TestExcelNLFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("mac.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer\rp1;E;01-03-2024;WAAR;7,5;\rp2;E;01-03-2024;ONWAAR;4;\r")
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 2)
	assert.True(t, e.sink.Added()[0].Passed)
	assert.False(t, e.sink.Added()[1].Passed)
	assert.Equal(t, "mac.csv:3", e.sink.Added()[1].SourceRef)
	assert.Equal(t, []string{"mac.csv"}, e.files("processed"), "no errors file")
	assert.Contains(t, e.logs.String(), `"absent_optional_columns":"remark (\"Opmerking\")"`)
}

// TestErrorsFileListsRejectedRows: rows the core's checks reject are listed
// in the errors file in line order among the rows that did not parse; a file
// none of whose rows can be sent is failed.
func TestErrorsFileListsRejectedRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.sink.Reject = func(c result.Completion) string {
		if c.PersonID == "bad" {
			return "PersoonExterneId: is 51 characters long; at most 50 allowed"
		}
		return ""
	}
	e.write("mixed.csv", header+"p1;E;01-03-2024;ja;7\nbad;E;01-03-2024;ja;7\np2;E;31-02-2024;ja;7\np3;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 3, "the rejected row is still stored, as rejected")
	recs := e.errorsFile("processed/mixed.csv.errors.csv")
	require.Len(t, recs, 2)
	assert.Equal(t, "3", recs[0][0])
	assert.Contains(t, recs[0][1], "rejected by the checks before sending: PersoonExterneId")
	assert.Equal(t, "bad;E;01-03-2024;ja;7", recs[0][2])
	assert.Equal(t, "4", recs[1][0])

	e.write("allbad.csv", header+"bad;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	assert.Equal(t, []string{"allbad.csv", "allbad.csv.errors.csv"}, e.files("failed"))
}

// TestRowsAppendedAfterTheMoveAreTaken: a writer the daemon could not see
// kept the file open and appended after it was moved to processed/; the new
// rows are taken from a continuation file below the original header.
func TestRowsAppendedAfterTheMoveAreTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("late.csv", header+"p1;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 1)

	f, err := os.OpenFile(filepath.Join(e.drop, "processed", "late.csv"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("p2;E;01-03-2024;ja;8\np3;E;01-03-2024;nee;4\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 3, "the appended rows are taken: %s", e.logs.String())
	assert.Equal(t, "p2", e.sink.Added()[1].PersonID)
	assert.Regexp(t, `^late\.continued-\d{8}T\d{6}\.csv:2$`, e.sink.Added()[1].SourceRef)
	assert.Contains(t, e.logs.String(), "rows were appended to a file after it was taken")

	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 3, "taken once")
}

// TestHeaderlessContinuationIsTaken: a writer that reopens the export per
// chunk recreates it, without header, after the first part was taken; its
// rows are taken below the first part's header, not failed.
func TestHeaderlessContinuationIsTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("chunks.csv", header+"p1;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	e.write("chunks.csv", "p2;E;01-03-2024;ja;8\n")
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 2)
	assert.Equal(t, "p2", e.sink.Added()[1].PersonID)
	assert.Empty(t, e.files("failed"))
	assert.Contains(t, e.logs.String(), "continues one taken earlier")

	// A file of the same name with a header of its own is simply a new export.
	e.write("chunks.csv", "Wie;Wat\nx;y\n")
	require.NoError(t, e.poll())
	assert.Equal(t, []string{"chunks.csv", "chunks.csv.errors.csv"}, e.files("failed"))
}

// TestCheck: `cvbridge check` fails for a drop folder that is missing, is a
// file, or cannot be written, and notes the files waiting in a good one.
func TestCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("a.csv", header)
	e.write(".hidden.csv", header)
	notes, err := e.f.Check(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"drop folder " + e.drop + ": 1 file(s) waiting"}, notes)
	assert.Equal(t, []string{".hidden.csv", "a.csv"}, e.files(""), "the check leaves nothing behind")

	require.NoError(t, os.Symlink(filepath.Join(e.drop, "a.csv"), filepath.Join(e.drop, "link.csv")))
	notes, err = e.f.Check(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"drop folder " + e.drop + ": 1 file(s) waiting",
		"drop folder " + e.drop + ": 1 symbolic link(s), never taken (links are not followed): put the files themselves there"}, notes)

	require.NoError(t, os.RemoveAll(e.drop))
	_, err = e.f.Check(t.Context())
	assert.ErrorContains(t, err, "drop folder "+e.drop+" does not exist")

	require.NoError(t, os.WriteFile(e.drop, nil, 0o644))
	_, err = e.f.Check(t.Context())
	assert.ErrorContains(t, err, "is not a directory")

	if os.Geteuid() != 0 { // root writes anywhere
		require.NoError(t, os.Remove(e.drop))
		require.NoError(t, os.Mkdir(e.drop, 0o555))
		_, err = e.f.Check(t.Context())
		assert.ErrorContains(t, err, "files cannot be moved out of it")
	}
}

// TestContinuationsSurviveARestart: a file is taken, then the daemon
// reloads or restarts (a new source of the connection); rows a writer
// appends to the taken file afterwards, or writes to a header-less file of
// its name, are still taken. Found: the files taken lately were known only
// to the source that took them, so such rows were never taken.
func TestContinuationsSurviveARestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("late.csv", header+"p1;E;01-03-2024;ja;7\n")
	e.write("chunks.csv", header+"q1;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 2)

	e.restart()
	f, err := os.OpenFile(filepath.Join(e.drop, "processed", "late.csv"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("p2;E;01-03-2024;ja;8\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	e.write("chunks.csv", "q2;E;01-03-2024;ja;8\n")
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	persons := func() []string {
		var ps []string
		for _, c := range e.sink.Added() {
			ps = append(ps, c.PersonID)
		}
		return ps
	}
	assert.ElementsMatch(t, []string{"p1", "q1", "p2", "q2"}, persons(), "logs: %s", e.logs.String())
	assert.Empty(t, e.files("failed"))

	// Once more, with a take between: the list follows each change.
	e.restart()
	f, err = os.OpenFile(filepath.Join(e.drop, "processed", "late.csv"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("p3;E;01-03-2024;ja;9\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	assert.ElementsMatch(t, []string{"p1", "q1", "p2", "q2", "p3"}, persons(), "p2 is not taken twice")

	// Past the hour the files are watched no more, and the list is gone.
	e.clk.Advance(recentWindow + time.Minute)
	require.NoError(t, e.poll())
	_, err = os.Stat(filepath.Join(e.f.processed.path, e.f.recentName()))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestDryRunLeavesRecentTakes: `cvbridge render` polls with a dry-run sink
// in a process of its own and must change nothing, so it writes no
// continuation of a file taken lately, but says what the daemon's next poll
// will do: take the rows appended to a taken file, and take a header-less
// file of a taken name below that name's header (not fail it).
func TestDryRunLeavesRecentTakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("late.csv", header+"p1;E;01-03-2024;ja;7\n")
	e.write("chunks.csv", header+"q1;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	appendTo(t, filepath.Join(e.drop, "processed", "late.csv"), "p2;E;01-03-2024;ja;8\n")
	e.write("chunks.csv", "q2;E;01-03-2024;ja;8\n")

	e.restart()
	e.logs.Reset()
	dry := kittest.NewSink()
	dry.Dry = true
	require.NoError(t, e.f.Poll(t.Context(), dry))
	assert.Equal(t, []string{"chunks.csv"}, e.files(""), "a dry run writes no continuation and moves nothing")
	assert.Contains(t, e.logs.String(), "dry run: rows were appended to a file after it was taken")
	assert.Contains(t, e.logs.String(), "dry run: the file has no header and continues one taken earlier")
	assert.NotContains(t, e.logs.String(), "would be moved to the failed directory")

	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 4)
	assert.Empty(t, e.files("failed"))
}

// appendTo appends text to a file a writer the daemon cannot see still holds.
func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(text)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// TestTwoDaemonsShareTheRecentTakes: two daemons on one database and one
// drop folder take turns polling the connection (the poll lease). Rows
// appended to a file one of them took are taken once, by whichever polls
// next, and the other does not write them again.
func TestTwoDaemonsShareTheRecentTakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	first := e.f
	second := newTestFolder(t, e.conn, e.clk)
	e.write("late.csv", header+"p1;E;01-03-2024;ja;7\n")
	require.NoError(t, first.Poll(t.Context(), e.sink))
	require.NoError(t, second.Poll(t.Context(), e.sink)) // knows the take now

	appendTo(t, filepath.Join(e.drop, "processed", "late.csv"), "p2;E;01-03-2024;ja;8\n")
	require.NoError(t, second.Poll(t.Context(), e.sink)) // writes the continuation
	require.NoError(t, first.Poll(t.Context(), e.sink))  // takes it, and writes none again
	require.NoError(t, second.Poll(t.Context(), e.sink))
	require.NoError(t, first.Poll(t.Context(), e.sink))
	var persons []string
	for _, c := range e.sink.Added() {
		persons = append(persons, c.PersonID)
	}
	assert.Equal(t, []string{"p1", "p2"}, persons)
	assert.Empty(t, e.files(""))
	processed := e.files("processed")
	assert.Len(t, processed, 2, "the file and one continuation: %v", processed)
}

// TestConnectionsSharingAProcessedDirectory: two connections read one drop
// folder with different patterns, so they share its processed directory.
// Each watches only its own takes: the other neither continues them nor
// drops them from the list.
func TestConnectionsSharingAProcessedDirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns+"  pattern: \"a-*.csv\"\n")
	other := connection(t, e.base, "  folder: drop\n"+dutchColumns+"  pattern: \"b-*.csv\"\n")
	other.Name = "second"
	b := newTestFolder(t, other, e.clk)
	bSink := kittest.NewSink()
	e.write("a-1.csv", header+"p1;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	e.write("b-1.csv", header+"q1;E;01-03-2024;ja;7\n")
	require.NoError(t, b.Poll(t.Context(), bSink)) // a take of its own: its list must not replace the first's
	appendTo(t, filepath.Join(e.drop, "processed", "a-1.csv"), "p2;E;01-03-2024;ja;8\n")
	require.NoError(t, b.Poll(t.Context(), bSink))
	assert.Empty(t, e.files(""), "the second connection does not continue the first's file")
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 2)
	assert.Len(t, bSink.Added(), 1)
}

// TestTamperedRecentListIsIgnored: the list of recent takes names only
// files the drop folder would take and files directly in the processed
// directory; any other entry is ignored, so no continuation is written
// outside the drop folder or read from outside the processed directory.
func TestTamperedRecentListIsIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	require.NoError(t, e.poll()) // creates the processed directory
	outside := filepath.Join(e.base, "outside.csv")
	require.NoError(t, os.WriteFile(outside, []byte(header+"x1;E;01-03-2024;ja;7\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(e.drop, "processed", "ok.csv"), []byte(header+"p1;E;01-03-2024;ja;7\n"), 0o644))
	at, err := e.clk.Now().MarshalJSON()
	require.NoError(t, err)
	future, err := e.clk.Now().Add(48 * time.Hour).MarshalJSON()
	require.NoError(t, err)
	h := `"` + base64.StdEncoding.EncodeToString([]byte(header)) + `"`
	list := `[{"name":"../../escape.csv","file":"ok.csv","size":1,"header":` + h + `,"at":` + string(at) + `},` +
		`{"name":"up.csv","file":"../../outside.csv","size":1,"header":` + h + `,"at":` + string(at) + `},` +
		`{"name":"dots.csv","file":"..","size":1,"header":` + h + `,"at":` + string(at) + `},` +
		`{"name":"future.csv","file":"ok.csv","size":1,"header":` + h + `,"at":` + string(future) + `}]`
	require.NoError(t, os.WriteFile(filepath.Join(e.f.processed.path, e.f.recentName()), []byte(list), 0o644))
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	assert.Empty(t, e.sink.Added())
	assert.Empty(t, e.files(""))
	entries, err := os.ReadDir(e.base)
	require.NoError(t, err)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	assert.ElementsMatch(t, []string{"drop", "outside.csv"}, names, "nothing written beside the drop folder")
	assert.Equal(t, 1, strings.Count(e.logs.String(), "name no file of this drop folder"),
		"the ignored entries are reported, once: the list is written again without them")
}

// utf16Text is s in UTF-16 of the given byte order, behind its byte-order
// mark when bom is set.
func utf16Text(s string, order binary.AppendByteOrder, bom bool) string {
	var b []byte
	if bom {
		b = order.AppendUint16(b, 0xFEFF)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return string(b)
}

// TestExcelUnicodeText reads Excel's "Unicode-tekst (*.txt)" export: UTF-16LE
// behind its byte-order mark, tab separated, CRLF, a quoted field with a
// line break. The sample (testdata/csvdrop/excel-unicode-text.txt) was
// written to that format's description, not by Excel, which cannot run
// here. Before UTF-16 was read, such a file failed with its header shown
// as "ÿþD\x00e\x00…".
func TestExcelUnicodeText(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `  pattern: "*.txt"
  columns:
    person: Deelnemer
    elearningcode: Code
    completed_at: Datum
    passed: Resultaat
    result_decimal: Cijfer
    remark: Opmerking
`)
	e.write("export.txt", sample(t, "excel-unicode-text.txt"))
	require.NoError(t, e.poll())
	added := e.sink.Added()
	require.Len(t, added, 3, "logs: %s", e.logs.String())
	assert.Equal(t, "Café Brontë, eigen bijdrage €50", added[0].Remark)
	assert.Equal(t, "7.5", added[0].ResultDecimal)
	assert.Equal(t, "twee\nregels", added[1].Remark)
	assert.Equal(t, "export.txt:6", added[2].SourceRef, "line numbers count the quoted line break")
	assert.Equal(t, "Łódź 𝄞", added[2].Remark)
	recs := e.errorsFile("processed/export.txt.errors.csv")
	require.Len(t, recs, 1)
	assert.Equal(t, "5", recs[0][0])
	assert.Contains(t, recs[0][1], "31-02-2024")
	assert.Equal(t, "P3\tEHBO\t31-02-2024\tgeslaagd\t8\tbestaat niet", recs[0][2], "the bad row, readable")
}

// TestUTF16Files: UTF-16 of either byte order is recognised by its mark,
// whatever encoding says; a last line without its line ending (two bytes in
// UTF-16) waits as in any file; rows appended after the take are taken
// below the UTF-16 header.
func TestUTF16Files(t *testing.T) {
	t.Parallel()
	tabHeader := strings.ReplaceAll(header, ";", "\t")
	row := func(person, grade string) string { return person + "\tE\t01-03-2024\tja\t" + grade + "\r\n" }

	e := newEnv(t, "  encoding: windows-1252\n"+dutchColumns)
	e.write("be.csv", utf16Text(tabHeader+row("b1", "7,5"), binary.BigEndian, true))
	path := filepath.Join(e.drop, "le.csv")
	e.write("le.csv", utf16Text(tabHeader+row("l1", "6")+"l2\tE\t01-03-2024\tja\t7", binary.LittleEndian, true))
	require.NoError(t, os.Chtimes(path, e.clk.Now(), e.clk.Now()))
	e.clk.Advance(time.Minute)
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 1, "logs: %s", e.logs.String())
	assert.Equal(t, "b1", e.sink.Added()[0].PersonID)
	assert.Equal(t, "7.5", e.sink.Added()[0].ResultDecimal)
	assert.Equal(t, []string{"le.csv"}, e.files(""), "the unterminated UTF-16 file waits")

	e.write("le.csv", utf16Text(tabHeader+row("l1", "6")+row("l2", "7"), binary.LittleEndian, true))
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 3)

	appendTo(t, filepath.Join(e.drop, "processed", "le.csv"), utf16Text(row("l3", "8"), binary.LittleEndian, false))
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 4, "logs: %s", e.logs.String())
	assert.Equal(t, "l3", e.sink.Added()[3].PersonID)
	assert.Equal(t, "8", e.sink.Added()[3].ResultDecimal)
	assert.Empty(t, e.files("failed"))

	// A writer that reopens the export per chunk writes each chunk as a
	// file of its own, with its byte-order mark but no header: the chunk's
	// rows are taken below the first part's header, without a mark inside
	// the first row's person id.
	e.write("le.csv", utf16Text(row("l4", "9"), binary.LittleEndian, true))
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 5, "logs: %s", e.logs.String())
	assert.Equal(t, "l4", e.sink.Added()[4].PersonID)

	// Without its mark, UTF-16 cannot be told from UTF-8 with NUL bytes: the
	// file fails, and the reason says what it probably is.
	e.write("nomark.csv", utf16Text(tabHeader+row("n1", "6"), binary.LittleEndian, false))
	require.NoError(t, e.poll())
	assert.Equal(t, []string{"nomark.csv", "nomark.csv.errors.csv"}, e.files("failed"))
	assert.Contains(t, e.errorsFile("failed/nomark.csv.errors.csv")[0][1], "probably UTF-16 without a byte-order mark")
}

// TestDryRunNamesFilesNotTakenYet: `cvbridge render` said "0 result(s)
// would be sent" about a file still being written, without naming it; it
// now says why the file is not taken yet.
func TestDryRunNamesFilesNotTakenYet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("fresh.csv", header+"p1;E;01-03-2024;ja;7\n")
	now := e.clk.Now()
	require.NoError(t, os.Chtimes(filepath.Join(e.drop, "fresh.csv"), now, now))
	e.write("half.csv", header+"p2;E;01-03-2024;ja;7")
	old := now.Add(-time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(e.drop, "half.csv"), old, old))
	dry := kittest.NewSink()
	dry.Dry = true
	require.NoError(t, e.f.Poll(t.Context(), dry))
	assert.Contains(t, e.logs.String(), `"msg":"dry run: the file is still being written (it changed within settle); a real poll takes it once it stands still","adapter":"csvdrop","file":"fresh.csv"`)
	assert.Contains(t, e.logs.String(), `"msg":"dry run: its last line has no line ending yet`)
	assert.Contains(t, e.logs.String(), `"file":"half.csv"`)
	assert.Empty(t, dry.Added())
}
