package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExampleConnectionsBuild keeps examples/lms.d true: every example LMS
// file builds through its adapter (`cvbridge check --offline`), with the
// secret files it names replaced by local ones.
func TestExampleConnectionsBuild(t *testing.T) {
	examples, err := filepath.Glob("../../examples/lms.d/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	for _, example := range examples {
		t.Run(filepath.Base(example), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "lms.d"), 0o755))
			main, err := os.ReadFile("../../examples/cvbridge.yaml")
			require.NoError(t, err)
			lms, err := os.ReadFile(example)
			require.NoError(t, err)
			// Point the system paths at files in the test's directory.
			for _, name := range []string{"coachview.secret", "moodle-readonly.dsn"} {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("postgres://u@127.0.0.1:1/x?sslmode=disable\n"), 0o600))
			}
			fix := func(b []byte) []byte {
				s := strings.ReplaceAll(string(b), "/etc/cvbridge/", dir+"/")
				return []byte(strings.ReplaceAll(s, "/var/lib/cvbridge/drop", filepath.Join(dir, "drop")))
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, "cvbridge.yaml"), fix(main), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", filepath.Base(example)), fix(lms), 0o644))

			out, err := runCLI(t, "check", "--offline", "--config", filepath.Join(dir, "cvbridge.yaml"))
			require.NoError(t, err, out)
			assert.Contains(t, out, "ok   connection")
		})
	}
}
