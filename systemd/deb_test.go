// Package systemd_test checks the files of the systemd/ directory: the
// Debian package systemd/deb/build.sh builds (its control data and its
// contents), and the unit's verification and exposure score.
package systemd_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// need returns the path of tool, or skips the test when it is missing (and
// fails it when CI is set, where it must be installed).
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		msg := tool + " is missing: apt-get install -y " + pkg
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so this is a failure")
		}
		t.Skip(msg)
	}
	return p
}

var (
	buildOnce  sync.Once
	builtDeb   string
	buildError error
)

// builtPackage builds the .deb once for the tests of this package, as
// version v1.2.3-4-gabc1234, and returns its path. It skips in -short mode.
func builtPackage(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and the package: not in -short mode")
	}
	need(t, "dpkg-deb", "dpkg")
	need(t, "objdump", "binutils")
	buildOnce.Do(func() {
		out, err := os.MkdirTemp("", "cvbridge-deb-")
		if err != nil {
			buildError = err
			return
		}
		if b, err := exec.Command("./deb/build.sh", "v1.2.3-4-gabc1234", out).CombinedOutput(); err != nil {
			buildError = fmt.Errorf("build.sh: %v\n%s", err, b)
			return
		}
		debs, err := filepath.Glob(filepath.Join(out, "cvbridge_1.2.3+4.gabc1234_*.deb"))
		if err == nil && len(debs) != 1 {
			err = fmt.Errorf("build.sh names the package after the Debian form of the version; found %v", debs)
		}
		if err != nil {
			buildError = err
			return
		}
		builtDeb = debs[0]
	})
	require.NoError(t, buildError)
	return builtDeb
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// TestDebianPackage builds the .deb with build.sh and checks what dpkg-deb
// reports of it, then extracts it and verifies the installed unit.
func TestDebianPackage(t *testing.T) {
	deb := builtPackage(t)

	t.Run("info", func(t *testing.T) {
		info := run(t, "dpkg-deb", "--info", deb)
		for _, want := range []string{
			" Package: cvbridge\n", " Version: 1.2.3+4.gabc1234\n",
			" Section: net\n", " Description: bridge between e-learning systems and Coachview\n",
		} {
			assert.Contains(t, info, want)
		}
		assert.Regexp(t, `(?m)^ Depends: libc6 \(>= 2\.[0-9]+\), libxml2, adduser$`, info)
		assert.NotContains(t, info, "localhost", "a real maintainer address")
		for _, script := range []string{"postinst", "prerm", "postrm"} {
			assert.Regexp(t, `(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+`+script+`\s+#!/bin/sh$`, info, "%s is an executable shell script", script)
		}
		ctrl := t.TempDir()
		run(t, "dpkg-deb", "--control", deb, ctrl)
		got, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
		require.NoError(t, err)
		examples, err := filepath.Glob("../examples/lms.d/*.yaml")
		require.NoError(t, err)
		want := []string{"/etc/cvbridge/cvbridge.yaml"}
		for _, e := range examples {
			want = append(want, "/etc/cvbridge/lms.d/"+filepath.Base(e))
		}
		assert.Equal(t, strings.Join(want, "\n")+"\n", string(got), "the example configuration is kept on upgrade")
	})

	t.Run("contents", func(t *testing.T) {
		// dpkg-deb --contents: mode owner/group size date time path
		line := regexp.MustCompile(`^(\S+) (\S+)\s+\d+ \S+ \S+ \./(.*)$`)
		entries := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", deb)), "\n") {
			m := line.FindStringSubmatch(l)
			require.NotNil(t, m, "unexpected line %q", l)
			assert.Equal(t, "root/root", m[2], "%s is owned by root", m[3])
			entries[strings.TrimSuffix(m[3], "/")] = m[1]
		}
		for path, mode := range map[string]string{
			"usr/bin/cvbridge":                                   "-rwxr-xr-x",
			"lib/systemd/system/cvbridge.service":                "-rw-r--r--",
			"usr/lib/sysusers.d/cvbridge.conf":                   "-rw-r--r--",
			"usr/lib/tmpfiles.d/cvbridge.conf":                   "-rw-r--r--",
			"etc/cvbridge":                                       "drwxr-x---",
			"etc/cvbridge/cvbridge.yaml":                         "-rw-r-----",
			"etc/cvbridge/lms.d/csvdrop.yaml":                    "-rw-r-----",
			"usr/share/doc/cvbridge/README.md":                   "-rw-r--r--",
			"usr/share/doc/cvbridge/systemd.md":                  "-rw-r--r--",
			"usr/share/doc/cvbridge/examples/cvbridge.yaml":      "-rw-r--r--",
			"usr/share/doc/cvbridge/examples/lms.d/csvdrop.yaml": "-rw-r--r--",
			"usr/share/doc/cvbridge/copyright":                   "-rw-r--r--",
			"usr/share/doc/cvbridge/changelog.gz":                "-rw-r--r--",
		} {
			assert.Equal(t, mode, entries[path], path)
		}
	})

	root := t.TempDir()
	run(t, "dpkg-deb", "--extract", deb, root)

	t.Run("files", func(t *testing.T) {
		for src, dst := range map[string]string{
			"cvbridge.service":  "lib/systemd/system/cvbridge.service",
			"cvbridge.sysusers": "usr/lib/sysusers.d/cvbridge.conf",
			"cvbridge.tmpfiles": "usr/lib/tmpfiles.d/cvbridge.conf",
		} {
			want, err := os.ReadFile(src)
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(root, dst))
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), dst)
		}
		version := run(t, filepath.Join(root, "usr/bin/cvbridge"), "version")
		assert.Equal(t, "cvbridge v1.2.3-4-gabc1234\n", version, "the binary carries the version it was built as")
		// The outbox is named in the state directory: not in /etc/cvbridge,
		// which the unit makes read-only, and the same for the service and
		// for a command run from a shell (issue 19, item 1).
		cfg, err := os.ReadFile(filepath.Join(root, "etc/cvbridge/cvbridge.yaml"))
		require.NoError(t, err)
		assert.Regexp(t, `(?m)^  path: /var/lib/cvbridge/outbox\.db$`, string(cfg))
		// The shipped CSV connection's drop folder is created (item 3).
		csv, err := os.ReadFile(filepath.Join(root, "etc/cvbridge/lms.d/csvdrop.yaml"))
		require.NoError(t, err)
		require.Regexp(t, `(?m)^  folder: /var/lib/cvbridge/drop$`, string(csv))
		tmpfiles, err := os.ReadFile(filepath.Join(root, "usr/lib/tmpfiles.d/cvbridge.conf"))
		require.NoError(t, err)
		assert.Regexp(t, `(?m)^d /var/lib/cvbridge/drop\s+0750 cvbridge cvbridge -$`, string(tmpfiles))
		// Reinstalling after a remove takes away the mask postrm set (item 2).
		postinst, err := os.ReadFile(filepath.Join(ctrlDir(t, deb), "postinst"))
		require.NoError(t, err)
		assert.Contains(t, string(postinst), "deb-systemd-helper unmask cvbridge.service")
	})

	t.Run("verify", func(t *testing.T) {
		analyze := need(t, "systemd-analyze", "systemd")
		// verify checks that ExecStart= is executable: point it at the
		// extracted binary; everything else is the unit as installed.
		unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/cvbridge.service"))
		require.NoError(t, err)
		require.Contains(t, string(unit), "ExecStart=/usr/bin/cvbridge ")
		dir := t.TempDir()
		path := filepath.Join(dir, "cvbridge.service")
		require.NoError(t, os.WriteFile(path,
			[]byte(strings.ReplaceAll(string(unit), "/usr/bin/cvbridge", filepath.Join(root, "usr/bin/cvbridge"))), 0o644))
		out, err := exec.CommandContext(t.Context(), analyze, "verify", path).CombinedOutput()
		require.NoError(t, err, "%s", out)
		// Warnings about the host's own units are not ours.
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			assert.NotContains(t, l, "cvbridge", "systemd-analyze verify: %s", l)
		}
	})
}

// maxExposure is the exposure score recorded in README.md; the unit may
// only get better.
const maxExposure = 1.4

func TestUnitExposure(t *testing.T) {
	t.Parallel()
	analyze := need(t, "systemd-analyze", "systemd")
	out := run(t, analyze, "security", "--offline=yes", "--no-pager", "cvbridge.service")
	m := regexp.MustCompile(`Overall exposure level for cvbridge\.service: ([0-9.]+)`).FindStringSubmatch(out)
	require.NotNil(t, m, "no score in:\n%s", out)
	score, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	assert.LessOrEqual(t, score, maxExposure, "the unit's exposure rose; see systemd/README.md:\n%s", out)

	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), "Overall exposure level for cvbridge.service: "+m[1]+" ", "README.md records the current score")
}

// ctrlDir extracts the control files of deb into a new directory.
func ctrlDir(t *testing.T, deb string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, "dpkg-deb", "--control", deb, dir)
	return dir
}

// TestLintian: the package has no lintian errors (warnings about the
// configuration's deliberate 0640/0750 modes and the like are accepted).
func TestLintian(t *testing.T) {
	lintian := need(t, "lintian", "lintian")
	report, _ := exec.CommandContext(t.Context(), lintian, "--no-tag-display-limit", builtPackage(t)).CombinedOutput()
	for _, l := range strings.Split(string(report), "\n") {
		assert.False(t, strings.HasPrefix(l, "E: "), "lintian: %s", l)
	}
}

// TestVersionsSort: versions of untagged builds (version.sh) become Debian
// versions that sort by commit time, so a later build is an upgrade; a
// dirty build sorts below its commit; a tagged release above every
// untagged build before it (issue 19, item 5).
func TestVersionsSort(t *testing.T) {
	t.Parallel()
	dpkg := need(t, "dpkg", "dpkg")
	// Later commit, hash starting with a letter: was "0~c4078ea" < "692ec41".
	ordered := []string{
		"0.1.0~git20261206.101500.692ec41~dirty",
		"0.1.0~git20261206.101500.692ec41",
		"0.1.0~git20261206.154500.c4078ea",
		"0.1.0~git20261207.090000.1234567",
		"0.1.0",
		"0.1.0+3.gabc1234",
		"0.2.0",
	}
	for i := 1; i < len(ordered); i++ {
		err := exec.CommandContext(t.Context(), dpkg, "--compare-versions", ordered[i-1], "lt", ordered[i]).Run()
		assert.NoError(t, err, "%s < %s", ordered[i-1], ordered[i])
	}
	v := strings.TrimSpace(run(t, "./deb/version.sh"))
	assert.Regexp(t, `^(v\d.*|0\.1\.0~git\d{8}\.\d{6}\.[0-9a-f]{7}(~dirty)?)$`, v, "version.sh in this checkout")
}
