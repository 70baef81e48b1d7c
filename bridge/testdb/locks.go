package testdb

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// POSIXLocks counts the POSIX (fcntl) locks that process pid holds on the
// file at path, as /proc/locks lists them. SQLite keeps such locks on its
// database file while a connection is open; a process that holds none lets
// another SQLite client believe it is alone.
func POSIXLocks(t testing.TB, pid int, path string) int {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("POSIX locks on %s: %v", path, err)
	}
	ino := strconv.FormatUint(info.Sys().(*syscall.Stat_t).Ino, 10)
	f, err := os.Open("/proc/locks")
	if err != nil {
		t.Fatalf("POSIX locks: %v", err)
	}
	defer func() { _ = f.Close() }() // read only
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: POSIX  ADVISORY  READ 1234 08:01:5678 128 128"; a waiter's line has "->" after the number.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "POSIX" {
			continue
		}
		dev := strings.Split(fields[5], ":")
		if fields[4] == strconv.Itoa(pid) && dev[len(dev)-1] == ino {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("POSIX locks: %v", err)
	}
	return n
}
