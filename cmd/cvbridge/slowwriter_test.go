package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowWriterIsTakenWhole: an export written by another process in chunks
// with pauses longer than settle (the default 500 ms), cut mid-line (after
// "…;7" before ",5") and at a line end, is delivered whole by the daemon
// process: every row once, with its whole grade, nothing in failed/. The
// writer either keeps the file open throughout or reopens it for each chunk
// (both were seen losing rows or sending 7 instead of 7,5 in issue 16).
func TestSlowWriterIsTakenWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	bin := binary(t)
	for _, mode := range []string{"kept-open", "reopened"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			sim, srv := newSimulator(t)
			cfgPath := e2eSetup(t, srv.URL, "")
			dir := filepath.Dir(cfgPath)
			lms := filepath.Join(dir, "lms.d", "export.yaml")
			b, err := os.ReadFile(lms)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(lms, []byte(strings.Replace(string(b), "  settle: 50ms\n", "", 1)), 0o644))

			const n = 40
			var csv strings.Builder
			csv.WriteString("Deelnemer;Cursuscode;Datum afgerond;Geslaagd;Cijfer;Opmerking\r\n")
			for i := range n {
				fmt.Fprintf(&csv, "P%04d;VCA-BASIS;30-11-2026;ja;7,5;\r\n", i)
			}
			content := csv.String()
			// Chunk ends: after "7" of row 10, at the end of row 20, mid-field
			// in row 30, the end. A writer that reopens per chunk and pauses
			// at a line end cannot be told from a finished export: the first
			// part is taken, and the header-less rest is taken below its header.
			row := func(i int) int { return strings.Index(content, fmt.Sprintf("P%04d;", i)) }
			cuts := []int{row(10) + len("P0010;VCA-BASIS;30-11-2026;ja;7"), row(21), row(30) + 5, len(content)}
			var script strings.Builder
			script.WriteString("set -e\n")
			if mode == "kept-open" {
				script.WriteString(`exec 3>"$DIR/drop/export.csv"` + "\n")
			}
			prev := 0
			for i, cut := range cuts {
				chunk := filepath.Join(dir, fmt.Sprintf("chunk-%d", i))
				require.NoError(t, os.WriteFile(chunk, []byte(content[prev:cut]), 0o644))
				prev = cut
				if i > 0 {
					script.WriteString("sleep 1.5\n")
				}
				if mode == "kept-open" {
					fmt.Fprintf(&script, "cat %q >&3\n", chunk)
				} else {
					fmt.Fprintf(&script, "cat %q >> \"$DIR/drop/export.csv\"\n", chunk)
				}
			}
			if mode == "kept-open" {
				script.WriteString("sleep 1.5\nexec 3>&-\n")
			}

			startDaemonProcess(t, bin, cfgPath, "daemon")
			waitRunning(t, filepath.Join(dir, "daemon.log"), 1)
			writer := exec.Command("sh", "-c", script.String())
			writer.Env = append(os.Environ(), "DIR="+dir)
			out, err := writer.CombinedOutput()
			require.NoError(t, err, string(out))

			waitFor(t, time.Minute, func() bool { return sim.Stats().Accepted >= n })
			waitFor(t, 30*time.Second, func() bool {
				left, err := os.ReadDir(filepath.Join(dir, "drop"))
				return err == nil && len(left) == 2 // processed/ and failed/
			})
			stats := sim.Stats()
			assert.Equal(t, n, stats.Accepted)
			assert.Equal(t, n, stats.Requests, "each row sent once, none with a cut grade")
			for _, r := range sim.Accepted() {
				assert.Contains(t, string(r.Body), `ResultaatDecimaal="7.5"`, r.PersonID)
			}
			failed, _ := os.ReadDir(filepath.Join(dir, "drop", "failed"))
			assert.Empty(t, failed, "nothing failed")
			processed, err := os.ReadDir(filepath.Join(dir, "drop", "processed"))
			require.NoError(t, err)
			for _, p := range processed {
				assert.NotContains(t, p.Name(), ".errors.csv", "no bad rows")
			}
		})
	}
}

// TestDutchExcelExport: an export as Dutch Excel writes it — Windows-1252,
// ";" with a trailing ";" on data rows only, CR-only line endings (old Mac
// Excel), WAAR/ONWAAR, no Opmerking column (optional by default), a decimal
// comma — is delivered whole by the daemon process; implausible rows (a date
// in 2099, a negative grade, an ambiguous number) and a row Coachview's rules
// refuse (a 51-character person id) are all listed in its one errors file
// and not sent.
func TestDutchExcelExport(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	bin := binary(t)
	sim, srv := newSimulator(t)
	cfgPath := e2eSetup(t, srv.URL, "")
	dir := filepath.Dir(cfgPath)
	content := "Deelnemer;Cursuscode;Datum afgerond;Geslaagd;Cijfer\r" +
		"P-\xe9\xe9n;VCA-BASIS;30-11-2026;WAAR;7,5;\r" +
		"P-twee;VCA-BASIS;30-11-2026;ONWAAR;4;\r" +
		"P-drie;VCA-BASIS;01-01-2099;WAAR;8;\r" +
		"P-vier;VCA-BASIS;30-11-2026;WAAR;-1;\r" +
		"P-vijf;VCA-BASIS;30-11-2026;WAAR;1.234,5;\r" +
		strings.Repeat("P", 51) + ";VCA-BASIS;30-11-2026;WAAR;6;\r"
	tmp := filepath.Join(dir, "drop", ".excel.part")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "drop", "excel.csv")))

	startDaemonProcess(t, bin, cfgPath, "daemon")
	waitFor(t, time.Minute, func() bool { return sim.Stats().Accepted >= 2 })
	waitFor(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "drop", "processed", "excel.csv.errors.csv"))
		return err == nil
	})
	got := map[string]string{}
	for _, r := range sim.Accepted() {
		got[r.PersonID] = string(r.Body)
	}
	require.Len(t, got, 2)
	assert.Contains(t, got["P-één"], `ResultaatDecimaal="7.5">true</Geslaagd>`, "WAAR, decimal comma, Windows-1252 name")
	assert.Contains(t, got["P-twee"], `ResultaatDecimaal="4">false</Geslaagd>`, "ONWAAR")
	errs, err := os.ReadFile(filepath.Join(dir, "drop", "processed", "excel.csv.errors.csv"))
	require.NoError(t, err)
	for _, want := range []string{"4;", "lies in the future", "5;", "below plausible.grade_min 0", "6;", "ambiguous",
		"7;", "rejected by the checks before sending: PersoonExterneId: is 51 characters long"} {
		assert.Contains(t, string(errs), want)
	}
	time.Sleep(time.Second)
	assert.Equal(t, 2, sim.Stats().Requests, "nothing else was sent")
}

// TestContinuationAfterReloadAndRestart: the daemon process takes an
// export; a writer it could not see goes on appending to the taken file,
// after a reload (SIGHUP), and then, after a kill -9 and a restart, writes
// a header-less file of the same name, as a writer reopening per chunk
// does. Every row is delivered, once. Found: the files taken lately were
// known only to the source that took them, which a reload or a restart
// replaces, so those rows were never taken.
func TestContinuationAfterReloadAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	bin := binary(t)
	sim, srv := newSimulator(t)
	cfgPath := e2eSetup(t, srv.URL, "")
	dir := filepath.Dir(cfgPath)
	daemonLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "daemon.log")); return string(b) }
	d := startDaemonProcess(t, bin, cfgPath, "daemon")
	waitRunning(t, filepath.Join(dir, "daemon.log"), 1)
	dropCSV(t, dir, "export.csv", goodRows(5))
	waitFor(t, 30*time.Second, func() bool { return sim.Stats().Accepted >= 5 })
	taken := filepath.Join(dir, "drop", "processed", "export.csv")
	waitFor(t, 30*time.Second, func() bool { _, err := os.Stat(taken); return err == nil })

	require.NoError(t, d.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(daemonLog(), "configuration reloaded") })
	row := func(i int) string { return fmt.Sprintf("P%04d;VCA-BASIS;30-12-2025 14:00;ja;7,5;\n", i) }
	f, err := os.OpenFile(taken, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(row(100) + row(101))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	waitFor(t, 30*time.Second, func() bool { return sim.Stats().Accepted >= 7 })

	require.NoError(t, d.Process.Kill())
	_ = d.Wait()
	startDaemonProcess(t, bin, cfgPath, "daemon2")
	waitRunning(t, filepath.Join(dir, "daemon2.log"), 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "drop", "export.csv"), []byte(row(102)+row(103)), 0o644))
	// A kill in the middle of a poll leaves the connection's poll lease to
	// run out (30 s) before the restarted daemon polls.
	waitFor(t, 75*time.Second, func() bool { return sim.Stats().Accepted >= 9 })

	time.Sleep(2 * time.Second) // two more polls: nothing is taken twice
	stats := sim.Stats()
	assert.Equal(t, 9, stats.Accepted)
	assert.Equal(t, 9, stats.Requests, "each row sent once")
	failed, _ := os.ReadDir(filepath.Join(dir, "drop", "failed"))
	assert.Empty(t, failed, "nothing failed")
}
