package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

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
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// DecodeStrict decodes node into out (a pointer to a struct) and fails on
// keys out does not declare and on values of the wrong type, naming file,
// line and key. Fields keep the values they had when the node does not set
// them, so callers fill in defaults before decoding. A nil node decodes nothing.
func DecodeStrict(file string, node *yaml.Node, out any) error {
	if node == nil {
		return nil
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	if err := checkKeys(file, node, reflect.TypeOf(out), ""); err != nil {
		return err
	}
	if err := node.Decode(out); err != nil {
		return locateDecodeError(file, node, err)
	}
	return nil
}

// checkKeys walks node alongside type t and reports the first mapping key
// that t has no field for.
func checkKeys(file string, node *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(yaml.Node{}) || node.Kind != yaml.MappingNode {
			return nil // yaml.Node fields take anything; type mismatches are reported by Decode
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			key := join(path, k.Value)
			if k.Value == "<<" {
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				return &Error{File: file, Line: k.Line, Key: key, Msg: "unknown key" + suggest(k.Value, fields)}
			}
			if err := checkKeys(file, v, ft, key); err != nil {
				return err
			}
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			if err := checkKeys(file, node.Content[i+1], t.Elem(), join(path, node.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			return nil
		}
		for i, v := range node.Content {
			if err := checkKeys(file, v, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
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

// locateDecodeError turns yaml's "line N: cannot unmarshal …" messages into
// an Error that names the file and the first offending line.
func locateDecodeError(file string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return &Error{File: file, Msg: err.Error()}
	}
	line := 0
	msg := te.Errors[0]
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, convErr := strconv.Atoi(n); convErr == nil {
				line, msg = l, after
			}
		}
	}
	if extra := len(te.Errors) - 1; extra > 0 {
		msg += fmt.Sprintf(" (and %d more)", extra)
	}
	return &Error{File: file, Line: line, Key: keyAt(root, line, ""), Msg: msg}
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
