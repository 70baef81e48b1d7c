package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cvbridge/cvbridge/bridge/config"
)

// FuzzLoad feeds arbitrary main files to Load: it must never panic, and
// every failure must be a located *config.Error naming the file.
func FuzzLoad(f *testing.F) {
	f.Add(minimalMain)
	f.Add("timezone: UTC\n" + minimalMain + "    concurrency: 3\n")
	f.Add("targets:\n  a: {url: 'https://x/r', secret_file: secret, retry: {transient: {base: 1s}}}\n")
	f.Add("targets: [\n")
	f.Add("&a {b: *a}\n")
	f.Fuzz(func(t *testing.T, main string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "lms.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "cvbridge.yaml")
		if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(path)
		if err == nil {
			return
		}
		var cerr *config.Error
		if !errors.As(err, &cerr) || cerr.File != path {
			t.Fatalf("error does not name the file: %T %v", err, err)
		}
	})
}
