package kit_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/kit"
)

// TestTrimSecret: one trailing line ending goes, nothing else does, so a
// secret with a space in it is the same secret for every reader.
func TestTrimSecret(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"s3cret":       "s3cret",
		"s3cret\n":     "s3cret",
		"s3cret\r\n":   "s3cret",
		"s3cret\n\n":   "s3cret\n",
		"s3cret \n":    "s3cret ",
		" s3cret\t":    " s3cret\t",
		"s3cret\r":     "s3cret\r",
		"\n":           "",
		"two\nlines\n": "two\nlines",
	} {
		assert.Equal(t, want, kit.TrimSecret(in), "%q", in)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("abc \r\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600))

	v, err := kit.ReadSecret(dir, "token", "")
	require.NoError(t, err)
	assert.Equal(t, "abc ", v, "relative to the base directory, one line ending trimmed")
	v, err = kit.ReadSecret("/elsewhere", filepath.Join(dir, "token"), "")
	require.NoError(t, err)
	assert.Equal(t, "abc ", v, "an absolute path ignores the base directory")

	_, err = kit.ReadSecret(dir, "empty", "")
	assert.ErrorContains(t, err, "empty")
	assert.EqualError(t, err, filepath.Join(dir, "empty")+" is empty")
	_, err = kit.ReadSecret(dir, "missing", "")
	assert.ErrorContains(t, err, "cannot read "+filepath.Join(dir, "missing"))

	t.Setenv("CVBRIDGE_KIT_TEST_SECRET", "from env\n")
	v, err = kit.ReadSecret(dir, "", "CVBRIDGE_KIT_TEST_SECRET")
	require.NoError(t, err)
	assert.Equal(t, "from env", v, "the environment by the same rule")
	_, err = kit.ReadSecret(dir, "", "CVBRIDGE_KIT_TEST_UNSET")
	assert.ErrorContains(t, err, "CVBRIDGE_KIT_TEST_UNSET is not set")
	t.Setenv("CVBRIDGE_KIT_TEST_EMPTY", "")
	_, err = kit.ReadSecret(dir, "", "CVBRIDGE_KIT_TEST_EMPTY")
	assert.ErrorContains(t, err, "CVBRIDGE_KIT_TEST_EMPTY is empty")

	// The secret itself written where the variable's name belongs is
	// refused without being repeated.
	_, err = kit.ReadSecret(dir, "", "postgres://cvb:Sup3rS3cret@db/cvb")
	assert.ErrorContains(t, err, "is not the name of an environment variable")
	assert.NotContains(t, err.Error(), "Sup3rS3cret")
}

// TestReadSecretWarnsOfLoosePermissions: a secret file every user may read,
// or others than its owner may change, is read (the daemon keeps running)
// with a warning naming the file and its mode; 0640 and 0600 are quiet.
func TestReadSecretWarnsOfLoosePermissions(t *testing.T) {
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"quiet-0640": 0o640, "quiet-0600": 0o600, "loud-0644": 0o644, "loud-0660": 0o660} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte("s3cret"), 0o600))
		require.NoError(t, os.Chmod(path, mode))
		v, err := kit.ReadSecret(dir, name, "")
		require.NoError(t, err)
		assert.Equal(t, "s3cret", v)
	}
	assert.Equal(t, 2, strings.Count(logs.String(), "a secret file can be read by every user"), logs.String())
	assert.Contains(t, logs.String(), "loud-0644 mode=0644")
	assert.Contains(t, logs.String(), "loud-0660 mode=0660")
	assert.NotContains(t, logs.String(), "quiet")
	assert.NotContains(t, logs.String(), "s3cret")
}

func TestResolve(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "/etc/cvbridge/drop", kit.Resolve("/etc/cvbridge", "drop"))
	assert.Equal(t, "/srv/drop", kit.Resolve("/etc/cvbridge", "/srv//drop/"))
	assert.Equal(t, "/srv", kit.Resolve("/etc/cvbridge", "../../srv"))
}

func TestCheckPrefix(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"mdl_", "m", "moodle2_", "a_b_c"} {
		assert.Empty(t, kit.CheckPrefix(ok), ok)
	}
	for _, bad := range []string{"", "MDL_", "1mdl_", "_mdl", "mdl; drop", "mdl-", "a_very_long_prefix_of_moodle"} {
		assert.Contains(t, kit.CheckPrefix(bad), "must be Moodle's table prefix", bad)
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	var p kit.Problems
	assert.NoError(t, p.Err())
	p.Addf("folder", "required")
	p.Addf("columns.person", "got %q", "x")
	assert.EqualError(t, p.Err(), "folder: required\ncolumns.person: got \"x\"")
	var one *kit.Problem
	require.ErrorAs(t, kit.At("dsn_file", os.ErrNotExist), &one)
	assert.Equal(t, "dsn_file", one.Key)
	assert.Equal(t, p, kit.At("other", p), "an error naming its keys keeps them")
	assert.NoError(t, kit.At("x", nil))
}

// TestShowURL: what may be shown of a URL keeps its shape and loses its
// secrets: a password, every query value, the fragment; an unparsable
// one is not shown.
func TestShowURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://cv.example/x?plugin=SECRET&a=b":          "https://cv.example/x?a=%2A%2A%2A&plugin=%2A%2A%2A",
		"https://user:SECRET@cv.example/x":                "https://user:xxxxx@cv.example/x",
		"https://learn.example.nl/?wstoken=SECRET#SECRET": "https://learn.example.nl/?wstoken=%2A%2A%2A",
		"https://cv.example/x":                            "https://cv.example/x",
		"http://[::1:SECRET":                              "(a URL that cannot be parsed; not shown, as it may hold a secret)",
	} {
		got := kit.ShowURL(in)
		assert.Equal(t, want, got, in)
		assert.NotContains(t, got, "SECRET", in)
	}
}
