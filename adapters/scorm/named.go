package scorm

import (
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Named parameters of the operator's SQL.
const (
	paramCursorTime = "cursor_time"
	paramPersonID   = "person_id"
	paramCode       = "elearning_code"
)

// enrolParams are the parameters enrol_sql and unenrol_sql may use.
var enrolParams = []string{paramPersonID, paramCode, "first_name", "infix", "last_name", "email"}

// namedSQL is operator SQL with :name parameters turned into '?'
// placeholders, and the parameter names in order.
type namedSQL struct {
	sql   string   // with ? placeholders
	names []string // one per placeholder
}

// compileNamed finds :name parameters outside string literals, quoted
// identifiers and comments, leaving PostgreSQL casts (::int) alone, and
// refuses names not in allowed, literal '?' (a placeholder the database
// driver would take), and more than one statement.
func compileNamed(query string, allowed []string) (*namedSQL, error) {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	var b strings.Builder
	var names []string
	q := strings.TrimRight(strings.TrimSpace(query), "; \t\n")
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(q) {
				if q[j] == '\\' && c == '\'' {
					j += 2
					continue
				}
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				return nil, fmt.Errorf("unterminated %c quote starting at byte %d", c, i)
			}
			b.WriteString(q[i : j+1])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("unterminated /* comment starting at byte %d", i)
			}
			b.WriteString(q[i : i+2+j+2])
			i += 2 + j + 1
		case c == ':' && i+1 < len(q) && q[i+1] == ':':
			b.WriteString("::")
			i++
		case c == ':' && i+1 < len(q) && isNameStart(q[i+1]):
			j := i + 1
			for j < len(q) && isNameChar(q[j]) {
				j++
			}
			name := q[i+1 : j]
			if !ok[name] {
				return nil, fmt.Errorf("unknown parameter :%s (allowed: :%s)", name, strings.Join(allowed, ", :"))
			}
			names = append(names, name)
			b.WriteByte('?')
			i = j - 1
		case c == '?':
			return nil, fmt.Errorf("contains '?' at byte %d: use named parameters such as :%s", i, allowed[0])
		case c == ';':
			return nil, fmt.Errorf("contains ';' at byte %d: give exactly one statement", i)
		case c == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			return nil, fmt.Errorf("contains a positional parameter at byte %d: use named parameters such as :%s", i, allowed[0])
		default:
			b.WriteByte(c)
		}
	}
	return &namedSQL{sql: b.String(), names: names}, nil
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

// uses reports whether the SQL uses parameter name.
func (n *namedSQL) uses(name string) bool {
	for _, x := range n.names {
		if x == name {
			return true
		}
	}
	return false
}

// bind returns the SQL for driver's placeholders and the arguments in
// placeholder order.
func (n *namedSQL) bind(driver string, values map[string]any) (string, []any) {
	args := make([]any, len(n.names))
	for i, name := range n.names {
		args[i] = values[name]
	}
	return sqlx.Rebind(sqlx.BindType(driver), n.sql), args
}
