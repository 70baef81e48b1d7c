package adapters_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestWalkthroughIsTheExample keeps adapters/README.md true: every Go
// block of its walkthrough is code of the example adapter or its test, as
// it is there. The example itself is built and tested with the rest.
func TestWalkthroughIsTheExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("example", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example adapter: %v", err)
	}
	var code strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("the walkthrough has %d Go blocks, want the settings, registration, build, poll and test", len(blocks))
	}
	for _, b := range blocks {
		if !strings.Contains(code.String(), b[1]) {
			t.Errorf("this block of README.md is not the example's code; copy it from adapters/example:\n%s", b[1])
		}
	}
}
