package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/config"
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

// TestExampleInboundSection keeps the commented inbound part of
// examples/cvbridge.yaml true: uncommented, with its files in place, it
// loads strictly and a daemon assembles its public handlers from it.
func TestExampleInboundSection(t *testing.T) {
	example, err := os.ReadFile("../../examples/cvbridge.yaml")
	require.NoError(t, err)
	text := string(example)
	start := strings.Index(text, "\n# public:")
	require.Positive(t, start, "the example has a commented public section")
	var lines []string
	for _, line := range strings.Split(text[start+1:], "\n") {
		lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	dir := t.TempDir()
	main := text[:start] + "\n" + strings.Join(lines, "\n")
	main = strings.ReplaceAll(main, "/etc/cvbridge/", dir+"/")
	main = strings.ReplaceAll(main, `addr: ":443"`, `addr: "127.0.0.1:0"`)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tls"), 0o755))
	writeCert(t, filepath.Join(dir, "tls"), 1)
	require.NoError(t, os.Rename(filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "fullchain.pem")))
	require.NoError(t, os.Rename(filepath.Join(dir, "tls", "key.pem"), filepath.Join(dir, "tls", "privkey.pem")))
	hash, err := bcrypt.GenerateFromPassword([]byte("admin-password"), bcrypt.MinCost)
	require.NoError(t, err)
	for name, content := range map[string]string{
		"coachview.secret": "s", "oauth-admin.bcrypt": string(hash), "oauth-coachview.secret": "a-client-secret-of-32-characters",
		"webhook.secret": "hook-secret", "token": "tok",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "lms.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", "moodle.yaml"),
		[]byte("type: moodle\nsettings:\n  mode: webservice\n  url: http://127.0.0.1:1\n  token_file: token\n"), 0o644))
	cfgPath := filepath.Join(dir, "cvbridge.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(main), 0o644))

	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	assert.True(t, cfg.Public.Enabled())
	require.Len(t, cfg.Inbound.Webhooks, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := openDaemon(context.Background(), cfg, log, nil, nil, nil)
	require.NoError(t, err)
	defer func() { assert.NoError(t, d.Close()) }()
	assert.NotNil(t, d.PublicHandler())
}
