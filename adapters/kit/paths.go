package kit

import (
	"fmt"
	"path/filepath"
	"regexp"
)

// Resolve makes p absolute against baseDir, the directory of cvbridge.yaml
// (adapters.Connection.BaseDir), as relative paths in cvbridge.yaml are.
// An absolute p is only cleaned.
func Resolve(baseDir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(baseDir, p)
}

// prefixPattern is what Moodle's installer accepts as $CFG->prefix and
// what both SQL dialects read unquoted: a lower-case letter, then
// lower-case letters, digits and _.
var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,20}$`)

// CheckPrefix says what is wrong with a Moodle table prefix, or returns ""
// when it is one. Adapters reading Moodle's tables (moodle, scorm) check
// the prefix with it before putting it in a query.
func CheckPrefix(prefix string) string {
	if prefixPattern.MatchString(prefix) {
		return ""
	}
	return fmt.Sprintf("must be Moodle's table prefix ($CFG->prefix: a lower-case letter, then lower-case letters, digits and _, such as mdl_), got %q", prefix)
}
