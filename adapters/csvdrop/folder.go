package csvdrop

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func init() {
	adapters.Register("csvdrop", func() *Settings { s := DefaultSettings(); return &s }, New)
}

var (
	_ source.Source  = (*Folder)(nil)
	_ source.Watcher = (*Folder)(nil)
)

// detailedBadRows is how many bad rows of a file are logged one by one; the
// rest are counted, and all are in the errors file.
const detailedBadRows = 5

// Folder is one connection's drop folder. It implements source.Source and
// source.Watcher. Polls are serialised; Watch may run beside them.
type Folder struct {
	settings          Settings
	folder            string
	processed, failed takenDir
	delim             rune // 0 = sniff per file
	loc               *time.Location
	log               *slog.Logger
	clock             clock.Clock

	connection string // the connection's name

	mu       sync.Mutex             // serialises polls; guards observed, noted, recent and recentUnsaved
	observed map[string]observation // files seen changing recently, by name
	noted    map[string]int64       // files left as incomplete, by name, with the size already logged
	recent   map[string]*recentTake // files moved to the processed directory lately, by name in the drop folder
	// recentUnsaved says the last saveRecent failed, so recent holds more
	// than recentName does.
	recentUnsaved bool

	// writers knows, while Watch runs, which files a writer still holds open.
	writers *writerTracker

	// recheck asks Watch to wake a poll after the duration sent, because
	// the last poll left a file that was still changing or incomplete.
	recheck chan time.Duration
}

// observation is a file's size and modification time as a poll first saw them.
type observation struct {
	size  int64
	mtime time.Time
	since time.Time // clock time of the first poll that saw this size and mtime
}

// New builds a drop-folder source from a connection's validated settings.
// It does not touch the folder: Poll creates the processed and failed
// directories. With enrol_export set, the source is an *EnrollingFolder.
func New(c adapters.Connection, s *Settings) (source.Source, error) {
	return newFolder(c, *s, clock.System{}).withEnroller(c.BaseDir)
}

func newFolder(c adapters.Connection, s Settings, clk clock.Clock) *Folder {
	f := &Folder{
		settings:   s,
		connection: c.Name,
		delim:      s.delimiterRune(),
		loc:        c.Location,
		log:        c.Logger,
		clock:      clk,
		observed:   map[string]observation{},
		noted:      map[string]int64{},
		recent:     map[string]*recentTake{},
		writers:    newWriterTracker(),
		recheck:    make(chan time.Duration, 1),
	}
	folder, processed, failed := s.dirs(c.BaseDir)
	f.folder = folder
	f.processed, f.failed = newTakenDir("processed_dir", folder, processed), newTakenDir("failed_dir", folder, failed)
	if f.loc == nil {
		f.loc = time.Local
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.log = f.log.With("adapter", "csvdrop")
	return f
}

// Poll takes every complete file in the drop folder, in name order, and
// commits each file's good rows in one batch marked with the file's content
// hash. A file still being written is left for a later poll: Poll asks a
// running Watch to wake it once Settle has passed; without Watch, the next
// scheduled poll takes it. Poll returns an error only for faults outside the
// files (folder missing, sink failing); a file's own problems move it to the
// failed directory with an errors file.
func (f *Folder) Poll(ctx context.Context, sink source.Sink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	names, err := f.ready(sink.DryRun())
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.take(ctx, sink, name); err != nil {
			return err
		}
	}
	return nil
}

// ready lists the drop folder and returns the names of the candidate files
// that have settled, sorted. It first copies rows appended to files taken
// lately into continuation files (checkRecent), or in a dry run says which
// it would copy (reportRecent).
func (f *Folder) ready(dryRun bool) ([]string, error) {
	if dryRun {
		f.reportRecent()
	} else {
		f.checkRecent()
	}
	entries, err := os.ReadDir(f.folder)
	if err != nil {
		return nil, fmt.Errorf("csvdrop: list drop folder: %w", err)
	}
	now := f.clock.Now()
	f.processed, f.failed = f.processed.again(), f.failed.again()
	for _, dir := range []takenDir{f.processed, f.failed} {
		if err := dir.mkdirAll(); err != nil {
			return nil, fmt.Errorf("csvdrop: %w", err)
		}
	}
	changing := map[string]observation{}
	var names []string
	for _, e := range entries {
		if f.staleTemporary(e, now) {
			if dryRun {
				continue
			}
			switch err := os.Remove(filepath.Join(f.folder, e.Name())); {
			case err == nil:
				f.log.Info("removed a temporary file a crash left in the drop folder", "file", e.Name())
			case !errors.Is(err, fs.ErrNotExist):
				f.log.Warn("cannot remove a temporary file a crash left in the drop folder", "file", e.Name(), "error", err)
			}
			continue
		}
		if e.IsDir() || !f.candidate(e.Name()) {
			continue
		}
		info, err := os.Lstat(filepath.Join(f.folder, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // taken away since the listing
		}
		if err != nil {
			f.log.Warn("cannot inspect file in drop folder; skipping it", "file", e.Name(), "error", err)
			continue
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			f.noteRefused(e.Name(), errSymlink.Error())
			continue
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if f.writers.isHeld(e.Name()) {
			f.noteIncomplete(e.Name(), info.Size(), "a writer still has the file open; it is taken once the writer closes it")
			continue // the writer's close wakes the next poll
		}
		if f.settled(e.Name(), info, now, changing) {
			names = append(names, e.Name())
		} else if dryRun {
			f.log.Info("dry run: the file is still being written (it changed within settle); a real poll takes it once it stands still",
				"file", e.Name(), "settle", f.settings.Settle.String())
		}
	}
	f.observed = changing
	for name := range f.noted {
		if _, err := os.Lstat(filepath.Join(f.folder, name)); errors.Is(err, fs.ErrNotExist) {
			delete(f.noted, name) // taken or removed: a new file of that name is news again
		}
	}
	if len(changing) > 0 {
		f.wantRecheck(f.settings.Settle)
	}
	return names, nil
}

// staleTemporary reports whether a directory entry is one of this adapter's
// temporary files (an errors file or a continuation being written, under a
// random name) that a crash left behind: untouched for an hour.
func (f *Folder) staleTemporary(e fs.DirEntry, now time.Time) bool {
	name := e.Name()
	if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".tmp") ||
		(!strings.Contains(name, ".errors.csv.") && !strings.Contains(name, ".continued-")) {
		return false
	}
	info, err := e.Info()
	return err == nil && now.Sub(info.ModTime()) > time.Hour
}

// wantRecheck asks a running Watch for a poll after d (plus a margin).
func (f *Folder) wantRecheck(d time.Duration) {
	for {
		select {
		case f.recheck <- d:
			return
		default: // a recheck is pending: keep the earlier of the two
		}
		select {
		case old := <-f.recheck:
			d = min(d, old)
		default:
		}
	}
}

// noteRefused logs once per file why a file in the drop folder is never
// taken as it is.
func (f *Folder) noteRefused(name, why string) {
	const refused = -2 // no file size: a refusal is logged once per name
	if logged, ok := f.noted[name]; ok && logged == refused {
		return
	}
	f.noted[name] = refused
	f.log.Warn("file not taken", "file", name, "reason", why)
}

// noteIncomplete logs once per file and size why a file is left for later.
func (f *Folder) noteIncomplete(name string, size int64, why string) {
	if logged, ok := f.noted[name]; ok && logged == size {
		return
	}
	f.noted[name] = size
	f.log.Info("file not taken yet", "file", name, "size", size, "reason", why)
}

// settled reports whether a file's size and modification time have stood
// still for Settle. A file that has not settled is recorded in changing.
func (f *Folder) settled(name string, info fs.FileInfo, now time.Time, changing map[string]observation) bool {
	settle := f.settings.Settle
	size, mtime := info.Size(), info.ModTime()
	if settle <= 0 || now.Sub(mtime) >= settle {
		return true // untouched for Settle, e.g. renamed into place when complete
	}
	o, ok := f.observed[name]
	if !ok || o.size != size || !o.mtime.Equal(mtime) {
		o = observation{size: size, mtime: mtime, since: now}
	}
	if now.Sub(o.since) >= settle {
		return true // unchanged across polls Settle apart, though its mtime is recent or ahead of our clock
	}
	changing[name] = o
	return false
}

// candidate reports whether a file name is one to take: it matches Pattern,
// case-insensitively, and is no dotfile, temporary or partial download, or
// Office lock file.
func (f *Folder) candidate(name string) bool {
	lower := strings.ToLower(name)
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~$") ||
		strings.HasSuffix(lower, ".tmp") || strings.HasSuffix(lower, ".part") {
		return false
	}
	if ok, _ := filepath.Match(f.settings.Pattern, name); ok {
		return true
	}
	ok, _ := filepath.Match(strings.ToLower(f.settings.Pattern), lower) // the pattern was validated
	return ok
}

// take processes one settled file: move it away as a duplicate, commit its
// good rows, or fail it. It returns an error only when the file must stay for
// the next poll because something outside it failed.
func (f *Folder) take(ctx context.Context, sink source.Sink, name string) error {
	log := f.log.With("file", name)
	path := filepath.Join(f.folder, name)
	if held, err := openForWriting(path); err == nil && held {
		f.noteIncomplete(name, -1, "a process still has the file open for writing; it is taken once closed")
		f.wantRecheck(f.settings.Settle)
		return nil
	}
	errs := newErrorsFile(f.folder, name)
	fh, err := openNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // taken away since the listing
	}
	if errors.Is(err, errSymlink) {
		f.noteRefused(name, errSymlink.Error()) // made a link since the listing
		return nil
	}
	var taken fs.FileInfo
	if err == nil {
		taken, err = fh.Stat()
	}
	if err != nil {
		if fh != nil {
			_ = fh.Close()
		}
		return f.fail(log, sink, name, errs, &fileError{err: fmt.Errorf("cannot open file: %w", err)}, nil)
	}
	out, err := f.read(ctx, sink, log, name, fh, taken, errs)
	_ = fh.Close() // opened read-only, so closing loses nothing; closed before the file is moved
	if sink.DryRun() {
		return f.dryRunReport(log, name, errs, out, err)
	}
	if err != nil {
		return err
	}
	switch {
	case out.fileErr != nil && out.noHeader && f.continueHeaderless(name):
		f.wantRecheck(0)
		return errs.discard()
	case out.fileErr != nil:
		return f.fail(log, sink, name, errs, out.fileErr, taken)
	case out.changed:
		log.Info("file changed while being read; taking it once it settles")
		f.wantRecheck(f.settings.Settle)
		return nil
	case out.unterminated:
		f.noteIncomplete(name, taken.Size(), fmt.Sprintf(
			"its last line has no line ending, so it may still be written; it is taken once unchanged for unterminated_settle (%s)", f.settings.UnterminatedSettle))
		f.wantRecheck(f.settings.UnterminatedSettle - f.clock.Now().Sub(taken.ModTime()))
		return nil
	case out.seen:
		dest, err := f.move(name, f.processed, nil, taken)
		if err != nil || dest == "" {
			return err
		}
		log.Info("file has the same content as one processed before; moved without enqueueing", "moved_to", dest)
		return nil
	}
	dest, err := f.move(name, f.processed, errs, taken)
	if err != nil || dest == "" {
		return err
	}
	attrs := []any{
		"rows", out.stats.good, "bad_rows", out.stats.bad, "queued", out.sum.Queued, "replaced", out.sum.Replaced, "waiting", out.sum.Waiting,
		"unchanged", out.sum.Unchanged, "ignored", out.sum.Ignored, "rejected", out.sum.Rejected, "moved_to", dest,
	}
	if len(out.stats.absent) > 0 {
		attrs = append(attrs, "absent_optional_columns", strings.Join(out.stats.absent, ", "))
	}
	if out.stats.bad > 0 {
		log.Warn("file processed; bad rows skipped, see its errors file", append(attrs, "errors_file", dest+".errors.csv")...)
		if skipped := out.stats.bad - out.refused; skipped > 0 {
			sink.ReportProblems(source.Problems{BadRows: skipped,
				Last: fmt.Sprintf("%s: %d bad rows skipped; see %s.errors.csv", name, skipped, shortPath(f.processed.path, dest))})
		}
		return nil
	}
	log.Info("file processed", attrs...)
	return nil
}

// dryRunReport says what a real poll would do with a file, and leaves it
// where it is.
func (f *Folder) dryRunReport(log *slog.Logger, name string, errs *errorsFile, out outcome, err error) error {
	if discardErr := errs.discard(); discardErr != nil {
		return discardErr
	}
	var continued *recentTake
	if out.fileErr != nil && out.noHeader {
		continued = f.continued(name)
	}
	switch {
	case err != nil && !errors.Is(err, source.ErrDryRun):
		return err
	case continued != nil:
		log.Info("dry run: the file has no header and continues one taken earlier; its rows would be taken below that header",
			"taken_earlier", f.processed.show(continued.file))
	case out.fileErr != nil:
		log.Warn("dry run: the file would be moved to the failed directory", "reason", out.fileErr.Error())
	case out.unterminated:
		log.Info("dry run: its last line has no line ending yet, so it may still be written; a real poll waits for it",
			"unterminated_settle", f.settings.UnterminatedSettle.String())
	case out.seen:
		log.Info("dry run: the same content was processed before; nothing would be enqueued")
	case out.stats.bad > 0:
		log.Warn("dry run: bad rows would be skipped", "rows", out.stats.good, "bad_rows", out.stats.bad)
	}
	return nil
}

// outcome is what reading a file decided about it.
type outcome struct {
	seen         bool       // the same content was committed before
	changed      bool       // the content changed while being read
	unterminated bool       // the last line has no line ending yet, and the file is recent
	noHeader     bool       // fileErr is about the header: the first line is no usable header
	fileErr      *fileError // the file is unusable
	stats        readStats
	sum          source.Summary
	refused      int // bad rows of stats the core's checks rejected (in sum, as rejected)
}

// read hashes the open file, and unless its content was seen before or it
// is unusable, commits its good rows, writing its bad rows to errs. An error
// means the sink failed; errs is then discarded.
func (f *Folder) read(ctx context.Context, sink source.Sink, log *slog.Logger, name string, fh *os.File, taken fs.FileInfo, errs *errorsFile) (outcome, error) {
	info, err := scanContent(fh)
	if err != nil {
		return outcome{fileErr: &fileError{err: fmt.Errorf("cannot read file: %w", err)}}, nil
	}
	if info.size == 0 {
		return outcome{fileErr: &fileError{line: 1, err: errors.New("file is empty")}}, nil
	}
	if !info.terminated && f.clock.Now().Sub(taken.ModTime()) < f.settings.UnterminatedSettle {
		return outcome{unterminated: true}, nil
	}
	mark := "sha256:" + info.sum
	seen, err := sink.Seen(ctx, mark)
	if err != nil {
		return outcome{}, fmt.Errorf("csvdrop: %s: look up content mark: %w", name, err)
	}
	if seen {
		return outcome{seen: true}, nil
	}
	enc, err := fileEncoding(f.settings.Encoding, info)
	if err != nil {
		return outcome{fileErr: &fileError{err: err}}, nil
	}
	r := &fileRun{f: f, log: log, name: name, fh: fh, info: info, enc: enc, errs: errs, now: f.clock.Now()}
	sum, err := sink.Commit(ctx, source.Checkpoint{Marks: []string{mark}, Rejected: r.rejected}, r.fill)
	switch {
	case r.fileErr != nil:
		return outcome{fileErr: r.fileErr, stats: r.stats, noHeader: r.stats.headerLine == 0 || errors.As(r.fileErr, new(*HeaderError))}, nil
	case r.changed:
		return outcome{changed: true}, errs.discard()
	case err != nil:
		return outcome{}, errors.Join(
			fmt.Errorf("csvdrop: %s: commit failed, file left in place for the next poll: %w", name, err),
			errs.discard())
	}
	return outcome{stats: r.stats, sum: sum, refused: r.refused}, nil
}

// fail moves a file that cannot be used to the failed directory, with its
// errors file explaining why.
func (f *Folder) fail(log *slog.Logger, sink source.Sink, name string, errs *errorsFile, fe *fileError, taken fs.FileInfo) error {
	if !errors.Is(fe, errNoRows) || errs.n == 0 {
		if err := errs.add(fe.line, fe.Error(), fe.raw); err != nil {
			return errors.Join(err, errs.discard())
		}
	}
	dest, err := f.move(name, f.failed, errs, taken)
	if err != nil || dest == "" {
		return err
	}
	log.Warn("file failed: no row enqueued", "line", fe.line, "reason", fe.Error(), "error_lines", errs.n, "moved_to", dest)
	sink.ReportProblems(source.Problems{FailedFiles: 1,
		Last: fmt.Sprintf("%s failed, no row enqueued: %v; moved to %s", name, fe, shortPath(f.failed.path, dest))})
	return nil
}

// shortPath names a file moved into dir as the last element of dir and the
// name ("failed/x.csv"), enough for an operator who knows the drop folder.
func shortPath(dir, name string) string {
	return filepath.Join(filepath.Base(dir), name)
}

// move renames a file from the drop folder into dir under a free name, and
// puts its errors file, if any, beside it. It returns the name used.
//
// Right before, it checks that the file is as it was when taken (size and
// modification time as in taken, when given) and that no writer holds it
// open. If not, the file stays in the drop folder, move returns "" and no
// error, and the next poll reads it again: rows already queued from it are
// unchanged then, not queued twice, and the rows added since are queued.
func (f *Folder) move(name string, dir takenDir, errs *errorsFile, taken fs.FileInfo) (string, error) {
	path := filepath.Join(f.folder, name)
	if why := f.changedSince(path, name, taken); why != "" {
		f.log.Warn("file changed after it was read; it stays in the drop folder and is read again", "file", name, "reason", why)
		f.wantRecheck(f.settings.Settle)
		if errs != nil {
			return "", errs.discard()
		}
		return "", nil
	}
	dest, err := freeName(dir.lstat, dir.path, name, f.clock.Now())
	if err == nil {
		err = dir.moveIn(name, dest)
	}
	if err != nil {
		if errs != nil {
			err = errors.Join(err, errs.discard())
		}
		return "", fmt.Errorf("csvdrop: move %s out of the drop folder: %w", name, err)
	}
	if dir == f.processed && taken != nil {
		f.remember(name, dest, taken.Size())
	}
	if errs != nil {
		if err := errs.finish(dir, dest+".errors.csv"); err != nil {
			return dest, fmt.Errorf("csvdrop: write errors file of %s: %w", name, err)
		}
	}
	return dest, nil
}

// changedSince says how a file differs from when it was taken, or "".
func (f *Folder) changedSince(path, name string, taken fs.FileInfo) string {
	if taken == nil {
		return ""
	}
	now, err := os.Stat(path)
	switch {
	case err != nil:
		return "" // gone or unreadable: the rename reports it
	case now.Size() != taken.Size() || !now.ModTime().Equal(taken.ModTime()):
		return fmt.Sprintf("size %d → %d bytes", taken.Size(), now.Size())
	case f.writers.isHeld(name):
		return "a writer opened it for writing"
	}
	if held, err := openForWriting(path); err == nil && held {
		return "a process has it open for writing"
	}
	return ""
}

// freeName returns name, or name with a timestamp (and a counter) before
// its extension, whichever neither it nor its errors file exists in dir,
// whose files lstat describes.
func freeName(lstat func(name string) (fs.FileInfo, error), dir, name string, now time.Time) (string, error) {
	ext := filepath.Ext(name)
	base, stamp := strings.TrimSuffix(name, ext), now.Format("20060102T150405")
	for i := 0; i < 1000; i++ {
		cand := name
		switch {
		case i == 1:
			cand = base + "." + stamp + ext
		case i > 1:
			cand = base + "." + stamp + "-" + strconv.Itoa(i) + ext
		}
		free := true
		for _, p := range []string{cand, cand + ".errors.csv"} {
			_, err := lstat(p)
			if err == nil {
				free = false
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
		if free {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// errNoRows fails a file none of whose rows could be used.
var errNoRows = errors.New("no usable row in the file")

// fileRun is the reading of one file inside a sink Commit.
type fileRun struct {
	f    *Folder
	log  *slog.Logger
	name string
	fh   *os.File
	info contentInfo
	enc  string
	errs *errorsFile
	now  time.Time // when the file is read, for the plausibility of dates

	stats   readStats
	fileErr *fileError // the file itself is unusable
	changed bool       // the content differs from the first pass

	// The record handed to the sink last, for rejected.
	curLine int
	curRaw  func() string
	refused int // good records the core's checks rejected
}

// fill is the Commit callback: it streams the file's good rows into add and
// its bad rows into the errors file. It starts afresh if the sink calls it
// again.
func (r *fileRun) fill(add func(result.Completion) error) error {
	r.stats, r.fileErr, r.changed, r.refused = readStats{}, nil, false, 0
	if err := r.errs.discard(); err != nil {
		return err
	}
	if _, err := r.fh.Seek(0, io.SeekStart); err != nil {
		r.fileErr = &fileError{err: fmt.Errorf("cannot read file: %w", err)}
		return r.fileErr
	}
	h := sha256.New()
	in, err := decoded(bufio.NewReader(io.TeeReader(r.fh, h)), r.enc, r.info)
	if err != nil {
		r.fileErr = &fileError{err: fmt.Errorf("cannot read file: %w", err)}
		return r.fileErr
	}
	good := func(c result.Completion, line int, raw func() string) error {
		r.curLine, r.curRaw = line, raw
		return add(c)
	}
	st, err := readCSV(in, r.f.delim, r.f.settings, r.f.loc, r.now, r.name, rowSink{good: good, bad: r.bad})
	st.good -= r.refused
	st.bad += r.refused
	r.stats = st
	if err != nil {
		var fe *fileError
		if errors.As(err, &fe) {
			r.fileErr = fe
		}
		return err // a problem of the file, or else of the sink or the errors file
	}
	if hex.EncodeToString(h.Sum(nil)) != r.info.sum {
		r.changed = true
		return errors.New("file changed while being read")
	}
	if st.good == 0 {
		r.fileErr = &fileError{err: errNoRows} // every row is in the errors file already
		if st.bad == 0 {
			r.fileErr = &fileError{line: st.headerLine, err: fmt.Errorf("%w: there are no data rows below the header", errNoRows)}
		}
		return r.fileErr
	}
	return nil
}

// rejected records in the errors file a row the core's checks rejected
// (Checkpoint.Rejected): it parsed, but cannot be sent, so the file's one
// report lists it beside the rows that did not parse.
func (r *fileRun) rejected(_, reason string) error {
	r.refused++
	return r.bad(r.curLine, "rejected by the checks before sending: "+reason, r.curRaw())
}

// bad records one bad row in the errors file, and in the log for the first few.
func (r *fileRun) bad(line int, reason, raw string) error {
	if r.errs.n < detailedBadRows {
		r.log.Warn("bad row skipped", "line", line, "reason", reason)
	}
	return r.errs.add(line, reason, raw)
}

// errorsFile is the "<file>.errors.csv" of a file with bad rows. It is
// written as a new hidden temporary file in the drop folder (a random name,
// so nothing planted there is written through), created on the first line,
// and renamed beside the file once the file is moved.
type errorsFile struct {
	folder, name string
	tmp          string // set once created
	fh           *os.File
	w            *csv.Writer
	n            int // lines written
}

func newErrorsFile(folder, name string) *errorsFile {
	return &errorsFile{folder: folder, name: name}
}

// add writes one line: line number (0: the whole file), reason, raw row.
func (e *errorsFile) add(line int, reason, raw string) error {
	if e.fh == nil {
		fh, err := os.CreateTemp(e.folder, "."+e.name+".errors.csv.*.tmp")
		if err != nil {
			return fmt.Errorf("csvdrop: create errors file: %w", err)
		}
		e.tmp, e.fh, e.w = fh.Name(), fh, csv.NewWriter(fh)
		e.w.Comma = ';'
		// The byte-order mark makes Excel read the file as UTF-8.
		if _, err := fh.Write(utf8BOM); err != nil {
			return fmt.Errorf("csvdrop: write errors file: %w", err)
		}
		if err := e.w.Write([]string{"line", "reason", "raw row"}); err != nil {
			return fmt.Errorf("csvdrop: write errors file: %w", err)
		}
	}
	e.n++
	if err := e.w.Write([]string{strconv.Itoa(line), reason, raw}); err != nil {
		return fmt.Errorf("csvdrop: write errors file: %w", err)
	}
	return nil
}

// close flushes and closes the temporary file, if open.
func (e *errorsFile) close() error {
	if e.fh == nil {
		return nil
	}
	e.w.Flush()
	err := errors.Join(e.w.Error(), e.fh.Close())
	e.fh, e.w = nil, nil
	return err
}

// discard removes what was written.
func (e *errorsFile) discard() error {
	err := e.close()
	if e.tmp != "" {
		if rerr := os.Remove(e.tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		e.tmp = ""
	}
	e.n = 0
	return err
}

// finish moves the errors file to name in dir, if any line was written.
func (e *errorsFile) finish(dir takenDir, name string) error {
	if e.n == 0 {
		return nil
	}
	if err := e.close(); err != nil {
		return err
	}
	err := dir.moveIn(filepath.Base(e.tmp), name)
	e.tmp = ""
	return err
}
