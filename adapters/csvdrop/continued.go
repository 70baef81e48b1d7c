package csvdrop

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// recentWindow is how long a file moved to the processed directory is
// watched for rows a writer adds after the move.
const recentWindow = time.Hour

// maxHeaderLine bounds the header line kept of a recently taken file.
const maxHeaderLine = 64 << 10

// recentTake is a file lately moved to the processed directory.
type recentTake struct {
	file   string    // its name in the processed directory
	size   int64     // bytes already taken from it
	header []byte    // its first line with its line ending, as bytes
	at     time.Time // when it was moved
}

// remember notes a file of the drop folder just moved to file in the
// processed directory, so that rows a writer appends to it there, or to a
// new file of the same name in the drop folder, are taken instead of lost. Each file is watched for recentWindow, across
// reloads and restarts (saveRecent).
func (f *Folder) remember(name, file string, size int64) {
	header, err := f.processedFirstLine(file)
	if err != nil || len(header) == 0 {
		return // nothing to continue from; the file itself is kept
	}
	f.recent[name] = &recentTake{file: file, size: size, header: header, at: f.clock.Now()}
	f.saveRecent()
}

// recentName names the file in the processed directory that keeps the files
// taken lately (Folder.recent) for every Folder of the connection: a reload
// builds a new one, a restart a new process, and daemons sharing a database
// and a drop folder take turns polling it (the poll lease). Without it, rows
// a writer appended after a reload or restart were never taken. Its name
// carries a hash of the connection's name, as connections may share a
// processed directory.
func (f *Folder) recentName() string {
	sum := sha256.Sum256([]byte(f.connection))
	return recentPrefix + hex.EncodeToString(sum[:8]) + ".json"
}

// recentPrefix starts the name of every connection's recentName.
const recentPrefix = ".cvbridge-recent-"

// savedTake is a recentTake as recentName keeps it.
type savedTake struct {
	Name   string    `json:"name"` // in the drop folder
	File   string    `json:"file"` // in the processed directory
	Size   int64     `json:"size"`
	Header []byte    `json:"header"`
	At     time.Time `json:"at"`
}

// loadRecent replaces the files taken lately by the list recentName holds,
// as the connection's last poll, here or in another daemon, left it. While
// this Folder could not save its own list, a missing file does not empty
// it. An entry that names anything but a file the drop folder would take,
// or a file directly in the processed directory, is ignored and reported,
// and loadRecent returns true so the list is written again without it: the
// list is only as trustworthy as the directory.
func (f *Folder) loadRecent() (dropped bool) {
	name := f.recentName()
	path := f.processed.show(name)
	b, err := f.readProcessed(name)
	if errors.Is(err, fs.ErrNotExist) {
		if !f.recentUnsaved {
			clear(f.recent)
		}
		return false
	}
	var saved []savedTake
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		f.log.Warn("cannot read the list of files taken lately; the rows appended to them are taken only while this daemon runs", "file", path, "error", err)
		return false
	}
	clear(f.recent)
	latest := f.clock.Now().Add(recentWindow)
	ignored := 0
	for _, t := range saved {
		if !f.candidate(t.Name) || !plainName(t.Name) || !plainName(t.File) || len(t.Header) == 0 || t.At.After(latest) {
			ignored++
			continue
		}
		f.recent[t.Name] = &recentTake{file: t.File, size: t.Size, header: t.Header, at: t.At}
	}
	if ignored > 0 {
		f.log.Warn("entries of the list of files taken lately name no file of this drop folder (the pattern changed, or the list was edited); they are no longer watched",
			"file", path, "ignored", ignored)
	}
	return ignored > 0
}

// plainName reports whether name names a file directly in a directory.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && filepath.Base(name) == name
}

// saveRecent writes the files taken lately to recentName, aside and renamed
// into place, or removes it when there are none.
func (f *Folder) saveRecent() {
	file := f.recentName()
	var err error
	if len(f.recent) == 0 {
		if err = f.processed.remove(file); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	} else {
		saved := make([]savedTake, 0, len(f.recent))
		for name, r := range f.recent {
			saved = append(saved, savedTake{Name: name, File: r.file, Size: r.size, Header: r.header, At: r.at})
		}
		slices.SortFunc(saved, func(a, b savedTake) int { return strings.Compare(a.Name, b.Name) })
		var b []byte
		if b, err = json.Marshal(saved); err == nil {
			err = f.processed.writeAside(file, func(w io.Writer) error { _, err := w.Write(b); return err })
		}
	}
	f.recentUnsaved = err != nil
	if err != nil {
		f.log.Warn("cannot save the list of files taken lately; after a reload or restart, rows appended to them are not taken",
			"file", f.processed.show(file), "error", err)
	}
}

// writeAside writes a file at path through a new temporary file in its
// directory (a dotfile ending in .tmp, which no poll takes), synced and
// renamed into place, so no reader ever sees it half written.
func writeAside(path string, write func(io.Writer) error) error {
	var tmp string
	return writeThrough(func() (*os.File, error) {
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
		if err == nil {
			tmp = f.Name()
		}
		return f, err
	}, func() error { return os.Rename(tmp, path) }, func() error { return os.Remove(tmp) }, write)
}

// writeThrough is writeAside's steps: create makes the new temporary file,
// write fills it, and it is synced, closed and put in place by rename, or
// removed by remove when any step failed.
func writeThrough(create func() (*os.File, error), rename, remove func() error, write func(io.Writer) error) error {
	tmp, err := create()
	if err != nil {
		return err
	}
	err = tmp.Chmod(0o640)
	if err == nil {
		err = write(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rename()
	}
	if err != nil {
		if rerr := remove(); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// firstLine returns the first line of a file, line ending included (LF, CRLF
// or a lone CR), or nil when there is none within maxHeaderLine bytes. In a
// file that starts with a UTF-16 byte-order mark, the line (mark included)
// ends with a UTF-16 line ending.
func firstLine(path string) ([]byte, error) {
	return readOpened(func() (*os.File, error) { return openNoFollow(path) }, readFirstLine)
}

// processedFirstLine is firstLine of the file name in the processed directory.
func (f *Folder) processedFirstLine(name string) ([]byte, error) {
	return readOpened(func() (*os.File, error) { return f.processed.open(name) }, readFirstLine)
}

// readProcessed returns the content of the file name in the processed directory.
func (f *Folder) readProcessed(name string) ([]byte, error) {
	return readOpened(func() (*os.File, error) { return f.processed.open(name) }, func(fh *os.File) ([]byte, error) { return io.ReadAll(fh) })
}

// readOpened opens a file with open, reads it with read and closes it.
func readOpened(open func() (*os.File, error), read func(*os.File) ([]byte, error)) ([]byte, error) {
	fh, err := open()
	if err != nil {
		return nil, err
	}
	defer func() { _ = fh.Close() }() // read only
	return read(fh)
}

// readFirstLine is firstLine of the file fh, read from its start.
func readFirstLine(fh *os.File) ([]byte, error) {
	head, err := bufio.NewReaderSize(io.LimitReader(fh, maxHeaderLine), maxHeaderLine).Peek(maxHeaderLine)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	unit, order := 1, binary.ByteOrder(nil)
	if order = utf16Order(head); order != nil {
		unit = 2
	}
	cr := -1
	for i := 0; i+unit <= len(head); i += unit {
		c := rune(head[i])
		if order != nil {
			c = rune(order.Uint16(head[i:]))
		}
		switch {
		case c == '\n':
			return head[:i+unit], nil
		case c == '\r' && cr < 0:
			cr = i
		}
	}
	if cr >= 0 {
		return head[:cr+unit], nil
	}
	return nil, nil
}

// checkRecent looks at the files taken lately: rows a writer appended to one
// after it was moved (it kept the file open, unseen) are written, below the
// file's header, to a continuation file in the drop folder, which the next
// poll takes like any export.
func (f *Folder) checkRecent() {
	changed := f.loadRecent()
	now := f.clock.Now()
	defer func() {
		if changed {
			f.saveRecent()
		}
	}()
	for name, r := range f.recent {
		if now.Sub(r.at) > recentWindow {
			delete(f.recent, name)
			changed = true
			continue
		}
		info, err := f.processed.lstat(r.file)
		switch {
		case err != nil || !info.Mode().IsRegular():
			delete(f.recent, name) // moved on by the operator (or replaced by a link, never followed)
			changed = true
			continue
		case info.Size() < r.size:
			f.log.Warn("a processed file shrank after it was taken; no longer watched", "file", f.processed.show(r.file))
			delete(f.recent, name)
			changed = true
			continue
		case info.Size() == r.size:
			continue
		}
		dest, err := f.continuation(name, r.header, func() (*os.File, error) { return f.processed.open(r.file) }, r.size)
		if err != nil {
			f.log.Error("rows were appended to a file after it was taken, and cannot be copied to the drop folder; add them in a new export",
				"file", f.processed.show(r.file), "from_byte", r.size, "error", err)
			continue
		}
		f.log.Warn("rows were appended to a file after it was taken (a writer still had it open); they are taken from a continuation file",
			"file", f.processed.show(r.file), "bytes", info.Size()-r.size, "continuation", dest)
		r.size = info.Size()
		changed = true
	}
}

// continueHeaderless handles a file without a usable header whose name was
// taken lately: a writer that reopens the export per chunk recreated it
// after the earlier part was taken. Its content is written below the earlier
// part's header to a continuation file, and the header-less file is moved to
// the processed directory. It reports whether it did so.
func (f *Folder) continueHeaderless(name string) bool {
	r := f.continued(name)
	if r == nil {
		return false
	}
	path := filepath.Join(f.folder, name)
	dest, err := f.continuation(name, r.header, func() (*os.File, error) { return openNoFollow(path) }, 0)
	if err != nil {
		f.log.Error("file has no header and seems to continue one taken earlier, but cannot be copied; add the header line and drop it again",
			"file", name, "taken_earlier", f.processed.show(r.file), "error", err)
		return false
	}
	moved, err := freeName(f.processed.lstat, f.processed.path, name, f.clock.Now())
	if err == nil {
		err = f.processed.moveIn(name, moved)
	}
	if err != nil {
		_ = os.Remove(filepath.Join(f.folder, dest)) // the original stays and is handled again
		f.log.Error("cannot move a header-less continuation out of the drop folder", "file", name, "error", err)
		return false
	}
	f.log.Warn("file has no header and continues one taken earlier (the writer reopened it after it was taken); its rows are taken below that header from a continuation file",
		"file", name, "taken_earlier", f.processed.show(r.file), "continuation", dest, "moved_to", moved)
	delete(f.recent, name)
	f.saveRecent()
	return true
}

// continued returns the file taken lately that the header-less file name
// in the drop folder continues, or nil: one of that name was taken lately
// and name does not start with its header (a file that does is one of its
// own, failed on its merits).
func (f *Folder) continued(name string) *recentTake {
	r := f.recent[name]
	if r == nil {
		return nil
	}
	if first, err := firstLine(filepath.Join(f.folder, name)); err != nil || bytes.Equal(first, r.header) {
		return nil
	}
	return r
}

// reportRecent is checkRecent for a dry run: it says which files taken
// lately have rows appended that the next real poll would take, and
// changes nothing.
func (f *Folder) reportRecent() {
	f.loadRecent()
	for _, r := range f.recent {
		if f.clock.Now().Sub(r.at) > recentWindow {
			continue
		}
		if info, err := f.processed.lstat(r.file); err == nil && info.Mode().IsRegular() && info.Size() > r.size {
			f.log.Info("dry run: rows were appended to a file after it was taken; they would be taken from a continuation file",
				"file", f.processed.show(r.file), "bytes", info.Size()-r.size)
		}
	}
}

// continuation writes header followed by the bytes of the file open opens
// from offset on to a new file in the drop folder, named after name with
// ".continued-<time>" before its extension, and returns that name. It is
// written aside and renamed into place, so no poll sees it half.
func (f *Folder) continuation(name string, header []byte, open func() (*os.File, error), offset int64) (string, error) {
	in, err := open()
	if err != nil {
		return "", err
	}
	defer func() { _ = in.Close() }() // read only
	if _, err := in.Seek(offset, io.SeekStart); err != nil {
		return "", err
	}
	var body io.Reader = in
	if offset == 0 {
		// A header-less file of its own: a writer that puts a byte-order
		// mark at the start of every file (Excel's Unicode text does) must
		// not have it land inside the first row, below the header's.
		br := bufio.NewReader(in)
		head, _ := br.Peek(len(utf8BOM))
		for _, bom := range [][]byte{utf8BOM, utf16LEBOM, utf16BEBOM} {
			if bytes.HasPrefix(head, bom) && bytes.HasPrefix(header, bom) {
				_, _ = br.Discard(len(bom)) // peeked: cannot fail
				break
			}
		}
		body = br
	}
	ext := filepath.Ext(name)
	inFolder := func(n string) (fs.FileInfo, error) { return os.Lstat(filepath.Join(f.folder, n)) }
	dest, err := freeName(inFolder, f.folder, strings.TrimSuffix(name, ext)+".continued-"+f.clock.Now().Format("20060102T150405")+ext, f.clock.Now())
	if err != nil {
		return "", err
	}
	err = writeAside(filepath.Join(f.folder, dest), func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		_, err := io.Copy(w, body)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("write continuation %s: %w", dest, err)
	}
	return dest, nil
}
