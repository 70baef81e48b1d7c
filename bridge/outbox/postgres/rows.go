package postgres

import "strings"

// qualified returns cols (a comma-separated column list) with each column
// prefixed by alias, for statements that join results to something else.
func qualified(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
