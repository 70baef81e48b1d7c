package bridge_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocListsEverySubPackage: the package doc names every package under
// bridge/, so it lists the tree as it is.
func TestDocListsEverySubPackage(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	dirs := map[string]bool{}
	require.NoError(t, filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && filepath.Ext(path) == ".go" && filepath.Dir(path) != "." {
			dirs[filepath.ToSlash(filepath.Dir(path))] = true
		}
		return nil
	}))
	require.NotEmpty(t, dirs)
	for dir := range dirs {
		// A package is named by its last element, or by its path below internal/.
		name := filepath.Base(dir)
		if filepath.Base(filepath.Dir(dir)) == "internal" {
			name = "internal/" + name
		}
		named := regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`).Match(doc)
		assert.True(t, named, "bridge/doc.go does not name the package %s (%q)", dir, name)
	}
}
