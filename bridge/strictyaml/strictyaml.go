// Package strictyaml decodes YAML into Go structs strictly and reports
// every mistake in the operator's words, naming file, line and key: keys the
// struct does not declare, values of the wrong type. It is the core's one
// decoder for cvbridge.yaml (bridge/config) and for each adapter's settings
// (the adapter registry decodes them; adapters never do), and it depends on
// nothing of the bridge, so the adapter contract stays small.
package strictyaml

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a configuration mistake located in a file.
type Error struct {
	File string
	Line int
	Key  string // dotted path of the key, when known
	Msg  string
}

func (e *Error) Error() string {
	var parts []string
	if e.File != "" {
		place := e.File
		if e.Line > 0 {
			place += ":" + strconv.Itoa(e.Line)
		}
		parts = append(parts, place)
	}
	if e.Key != "" {
		parts = append(parts, e.Key)
	}
	return strings.Join(append(parts, e.Msg), ": ")
}

// Errors is every mistake found in a configuration, one a line.
type Errors []*Error

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the mistakes, so errors.As finds an *Error among them.
func (e Errors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, err := range e {
		errs[i] = err
	}
	return errs
}

// Add appends err's mistakes (an *Error, or Errors), but not a second one
// about the same key of the same file: a value of the wrong type is not
// also reported as missing. Any other error is appended as it reads.
func (e *Errors) Add(err error) {
	var list Errors
	var one *Error
	switch {
	case err == nil:
	case errors.As(err, &list):
		for _, x := range list {
			e.Add(x)
		}
	case errors.As(err, &one):
		for _, x := range *e {
			if one.Key != "" && x.File == one.File && x.Key == one.Key {
				return
			}
		}
		*e = append(*e, one)
	default:
		*e = append(*e, &Error{Msg: err.Error()})
	}
}

// Sorted orders e by file, in the order the files first appear, and by
// line within a file; a mistake without a line comes last in its file.
func (e Errors) Sorted() Errors {
	rank := map[string]int{}
	for _, err := range e {
		if _, ok := rank[err.File]; !ok {
			rank[err.File] = len(rank)
		}
	}
	line := func(err *Error) int {
		if err.Line == 0 {
			return math.MaxInt
		}
		return err.Line
	}
	sorted := slices.Clone(e)
	sort.SliceStable(sorted, func(i, j int) bool {
		if a, b := rank[sorted[i].File], rank[sorted[j].File]; a != b {
			return a < b
		}
		return line(sorted[i]) < line(sorted[j])
	})
	return sorted
}

// Err returns e as an error, nil when it holds no mistake.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Decode decodes node into out (a pointer to a struct) and fails on
// keys out does not declare and on values of the wrong type, naming file,
// line and key of every one (as Errors), in the operator's words. Fields
// keep the values they had when the node does not set them, so callers
// fill in defaults before decoding. A nil node decodes nothing.
func Decode(file string, node *yaml.Node, out any) error {
	if node == nil {
		return nil
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	var errs Errors
	// yaml.v3 decodes nothing at all past a key given twice, so every
	// setting after it would seem missing: the repeat is reported, and the
	// rest decoded without it.
	node = withoutRepeatedKeys(file, node, "", &errs)
	checkNode(file, node, reflect.TypeOf(out), "", &errs)
	// Decoding goes on past a value of the wrong type, so out holds all
	// the rest; its errors are the ones checkNode reported already.
	if err := node.Decode(out); err != nil && len(errs) == 0 {
		errs.Add(locateDecodeError(file, node, err))
	}
	return errs.Err()
}

// withoutRepeatedKeys returns node, or a copy of it without the second
// and later occurrences of a key in any of its mappings, each reported to
// errs with the line of the first.
func withoutRepeatedKeys(file string, node *yaml.Node, path string, errs *Errors) *yaml.Node {
	if node.Kind != yaml.MappingNode && node.Kind != yaml.SequenceNode {
		return node // scalars, and aliases (checked where their anchor is)
	}
	out := *node
	out.Content = make([]*yaml.Node, 0, len(node.Content))
	if node.Kind == yaml.SequenceNode {
		for i, v := range node.Content {
			out.Content = append(out.Content, withoutRepeatedKeys(file, v, fmt.Sprintf("%s[%d]", path, i), errs))
		}
		return &out
	}
	first := map[string]int{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		key := join(path, k.Value)
		if k.Value != "<<" {
			if line, seen := first[k.Value]; seen {
				errs.Add(&Error{File: file, Line: k.Line, Key: key, Msg: fmt.Sprintf("is given twice (first on line %d): keep one", line)})
				continue
			}
			first[k.Value] = k.Line
		}
		out.Content = append(out.Content, k, withoutRepeatedKeys(file, v, key, errs))
	}
	return &out
}

var (
	nodeType     = reflect.TypeOf(yaml.Node{})
	durationType = reflect.TypeOf(time.Duration(0))
)

// checkNode walks node alongside type t and reports every mapping key that
// t has no field for and every value that does not fit its field.
func checkNode(file string, node *yaml.Node, t reflect.Type, path string, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	if t == nodeType || t.Kind() == reflect.Interface || node.ShortTag() == "!!null" {
		return // a yaml.Node takes anything; null leaves the default
	}
	fail := func(msg string) { errs.Add(&Error{File: file, Line: node.Line, Key: path, Msg: msg}) }
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			if leafMistake(node, t) != "" { // a time, or a type that reads a scalar itself, may fit
				fail(notMapping(node))
			}
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			if k.Value == "<<" { // a merge: its mappings' keys are this mapping's
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					checkNode(file, m, t, path, errs)
				}
				continue
			}
			key := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				errs.Add(&Error{File: file, Line: k.Line, Key: key, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			checkNode(file, v, ft, key, errs)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			fail(notMapping(node))
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			checkNode(file, node.Content[i+1], t.Elem(), join(path, node.Content[i].Value), errs)
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			fail(notList(node))
			return
		}
		for i, v := range node.Content {
			checkNode(file, v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	default:
		if msg := leafMistake(node, t); msg != "" {
			fail(msg)
		}
	}
}

// leafMistake says in the operator's words why node does not fit a single
// value of type t, or returns "" when it does.
func leafMistake(node *yaml.Node, t reflect.Type) string {
	isInt := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 && t != durationType
	if isInt && node.ShortTag() == "!!float" {
		// yaml.v3 would cut 1.5 to 1 without a word.
		if f, err := strconv.ParseFloat(node.Value, 64); err != nil || f != math.Trunc(f) {
			return fmt.Sprintf("%q is not a whole number", node.Value)
		}
	}
	err := node.Decode(reflect.New(t).Interface())
	if err == nil {
		return ""
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error() // a type that reads itself speaks for itself
	}
	v := node.Value
	quoted := node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
	switch {
	case node.Kind == yaml.MappingNode:
		return "must be a single value, not a mapping"
	case node.Kind == yaml.SequenceNode:
		return "must be a single value, not a list"
	case t == durationType:
		return durationMistake(v)
	case quoted && (isInt || t.Kind() == reflect.Bool || t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64):
		return fmt.Sprintf("%q is quoted, which makes it text; write it without quotes", v)
	case isInt && t.Kind() >= reflect.Uint:
		return fmt.Sprintf("%q is not a whole number of 0 or more", v)
	case isInt && node.ShortTag() == "!!int":
		return fmt.Sprintf("%s is too large", v)
	case isInt:
		return fmt.Sprintf("%q is not a whole number", v)
	case t.Kind() == reflect.Bool:
		return fmt.Sprintf("%q is not true or false", v)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return fmt.Sprintf("%q is not a number", v)
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		_, msgs[i] = splitLine(m)
	}
	return strings.Join(msgs, "; ")
}

// durationMistake explains a value that is not a Go duration.
func durationMistake(v string) string {
	const like = "write it like 90m, 36h or 2160h"
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return fmt.Sprintf("%q is not a duration: it needs a unit; write it like %ss, %sm or %sh", v, v, v, v)
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil {
			return fmt.Sprintf("%q is not a duration; %s (Go durations have no d: %s is %sh)", v, like, v, strconv.FormatFloat(n*24, 'f', -1, 64))
		}
	}
	return fmt.Sprintf("%q is not a duration; %s (units: ms, s, m, h)", v, like)
}

const (
	mappingHint = `write its keys below it, one "key: value" per line, indented`
	listHint    = `or one "- %s" line per item below the key`
)

// notMapping explains a value where keys were expected.
func notMapping(node *yaml.Node) string {
	if node.Kind == yaml.SequenceNode {
		return "must be a mapping, not a list; " + mappingHint
	}
	return fmt.Sprintf("%q is not a mapping; %s", node.Value, mappingHint)
}

// notList explains a value where a list was expected.
func notList(node *yaml.Node) string {
	if node.Kind == yaml.MappingNode {
		return "must be a list, not a mapping; write [a, b], " + fmt.Sprintf(listHint, "item")
	}
	return fmt.Sprintf("%q is not a list; write [%s], "+listHint, node.Value, node.Value, node.Value)
}

// yamlFields maps the YAML keys of struct t (including inlined structs) to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					fields[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names the known keys, closest first, so a typo is easy to spot.
func suggest(key string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Slice(known, func(i, j int) bool {
		di, dj := distance(key, known[i]), distance(key, known[j])
		if di != dj {
			return di < dj
		}
		return known[i] < known[j]
	})
	if len(known) > 0 && distance(key, known[0]) <= 2 {
		return fmt.Sprintf(" (did you mean %q?)", known[0])
	}
	sort.Strings(known)
	return " (known keys: " + strings.Join(known, ", ") + ")"
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// locateDecodeError turns yaml's "line N: …" messages, for what checkNode
// does not foresee, into Errors that name the file, line and key.
func locateDecodeError(file string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return &Error{File: file, Msg: err.Error()}
	}
	var errs Errors
	for _, m := range te.Errors {
		line, msg := splitLine(m)
		errs.Add(&Error{File: file, Line: line, Key: keyAt(root, line, ""), Msg: msg})
	}
	return errs
}

// splitLine splits yaml's "line N: " prefix off msg.
func splitLine(msg string) (line int, rest string) {
	if after, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(after, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				return l, after
			}
		}
	}
	return 0, msg
}

// keyAt returns the dotted path of the mapping key whose value sits on
// line, or "" when there is none.
func keyAt(node *yaml.Node, line int, path string) string {
	switch node.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			key := join(path, k.Value)
			if v.Line == line && v.Kind == yaml.ScalarNode {
				return key
			}
			if found := keyAt(v, line, key); found != "" {
				return found
			}
		}
	case yaml.SequenceNode:
		for i, v := range node.Content {
			if found := keyAt(v, line, fmt.Sprintf("%s[%d]", path, i)); found != "" {
				return found
			}
		}
	}
	return ""
}

// Join appends key to the dotted path.
func Join(path, key string) string { return join(path, key) }

// KeyLine returns the line of the dotted key (such as columns.person) in
// the mapping node, or of the deepest enclosing key present, or of the
// mapping itself when not even the first key is there; 0 without a node.
func KeyLine(node *yaml.Node, key string) int {
	if node == nil {
		return 0
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	line := node.Line
	for _, part := range strings.Split(key, ".") {
		if node.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == part {
				line, node, found = node.Content[i].Line, node.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}
