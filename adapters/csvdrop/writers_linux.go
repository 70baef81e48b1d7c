//go:build linux

package csvdrop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writerTracker follows, through inotify, which files of the drop folder some
// process has written to and not closed since: a file is held from its first
// write (or creation) until a close-after-write. It sees writers of every
// user, which /proc does not show an unprivileged daemon. Files written
// before tracking started are unknown to it, and so is everything after the
// kernel's event queue overflowed, until their next close.
type writerTracker struct {
	mu   sync.Mutex
	held map[string]bool // by file name in the drop folder
}

func newWriterTracker() *writerTracker { return &writerTracker{held: map[string]bool{}} }

// isHeld reports whether a writer still has name open, as far as the events tell.
func (t *writerTracker) isHeld(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held[name]
}

// run tracks dir until ctx ends, calling closed with the name of each file
// a writer closed. It returns nil when ctx ends.
func (t *writerTracker) run(ctx context.Context, dir string, closed func(name string)) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking, so Close ends a pending Read
	const mask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		_ = f.Close()
		return fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer stop()
	defer t.forget()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			_ = f.Close()
			return fmt.Errorf("inotify read: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if t.apply(ev.Mask, name) {
				closed(name)
			}
		}
	}
}

// apply updates the state for one event and reports whether it was a
// writer closing name.
func (t *writerTracker) apply(mask uint32, name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case mask&unix.IN_Q_OVERFLOW != 0:
		clear(t.held) // events were lost: nothing known any more
	case name == "":
	case mask&unix.IN_CLOSE_WRITE != 0:
		delete(t.held, name)
		return true
	case mask&(unix.IN_CREATE|unix.IN_MODIFY) != 0:
		t.held[name] = true
	case mask&(unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_DELETE) != 0:
		delete(t.held, name)
	}
	return false
}

// forget drops the state once tracking stops.
func (t *writerTracker) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.held)
}

// openForWriting reports whether a process this one may inspect has path
// open for writing, by looking through /proc: every process of the same
// user, and every process when the daemon may trace them (root). Processes
// it cannot inspect are skipped; the writer tracker covers those. The daemon
// itself opens drop files only for reading, so it never counts.
func openForWriting(path string) (bool, error) {
	target, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return false, nil // no /proc: nothing to learn here
	}
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue // gone, or not ours to look at
		}
		for _, fd := range fds {
			info, err := os.Stat(filepath.Join(dir, "fd", fd.Name()))
			if err != nil || !os.SameFile(info, target) {
				continue
			}
			if writable(filepath.Join(dir, "fdinfo", fd.Name())) {
				return true, nil
			}
		}
	}
	return false, nil
}

// writable reads the flags line of an fdinfo file and reports whether the
// descriptor was opened for writing. An unreadable file counts as writable:
// the descriptor is open on the file, and doubt keeps the file in place.
func writable(fdinfo string) bool {
	f, err := os.Open(fdinfo)
	if err != nil {
		return true
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "flags:")
		if !ok {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
		if err != nil {
			return true
		}
		return flags&unix.O_ACCMODE != unix.O_RDONLY
	}
	return true
}
