package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSink runs `cvbload sink` as the benchmark does: a signed webhook is
// answered 200, an unsigned one 401, and SIGTERM stops it cleanly.
func TestSink(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cvbload: skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cvbload")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("target-secret\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "whsecret"), []byte("wh-secret\n"), 0o600))
	cfg := filepath.Join(dir, "cvbridge.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`storage:
  path: outbox.db
targets:
  coachview:
    url: http://127.0.0.1:9/elearning/result.aspx
    secret_file: secret
public:
  addr: 127.0.0.1:0
  tls:
    off: true
inbound:
  webhooks:
    - name: cv
      path: /webhooks/cv
      signing_secret_file: whsecret
      event_path: Event
`), 0o644))

	require.NoError(t, os.Mkdir(filepath.Join(dir, "lms.d"), 0o755))

	cmd := exec.Command(bin, "sink", "-config", cfg)
	logFile, err := os.Create(filepath.Join(dir, "sink.log"))
	require.NoError(t, err)
	defer func() { _ = logFile.Close() }()
	cmd.Stderr = logFile
	log := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	banner, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, log())
	m := regexp.MustCompile(`sink listening on (http://\S+/)`).FindStringSubmatch(banner)
	require.NotNil(t, m, banner)

	body := `{"Event":"deelnemer.aangemeld"}`
	mac := hmac.New(sha256.New, []byte("wh-secret"))
	mac.Write([]byte(body))
	post := func(sig string) int {
		req, err := http.NewRequest(http.MethodPost, m[1]+"webhooks/cv", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-Coachview-Whsignature", sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, post(base64.StdEncoding.EncodeToString(mac.Sum(nil))))
	assert.Equal(t, http.StatusUnauthorized, post(base64.StdEncoding.EncodeToString([]byte("forged"))))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), log())
	assert.Contains(t, log(), "sink stopped")
	assert.Contains(t, log(), "messages=1", "only the verified message counts")
	assert.NoFileExists(t, filepath.Join(dir, "outbox.db"), "the sink stores nothing")
}
