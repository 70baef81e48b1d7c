package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Path is a compiled JSON path: dot-separated object keys and array indexes,
// e.g. "Data.Persoon.ExternId" or "Deelnemers.0.Code".
type Path []string

// ParsePath compiles s; empty segments are refused.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, fmt.Errorf("JSON path is empty")
	}
	p := Path(strings.Split(s, "."))
	for _, seg := range p {
		if seg == "" {
			return nil, fmt.Errorf("JSON path %q has an empty segment", s)
		}
	}
	return p, nil
}

func (p Path) String() string { return strings.Join(p, ".") }

// Lookup returns the value at p in doc (as decoded by Decode) as a string:
// strings as they are, numbers in their JSON spelling, booleans as
// true/false. found is false when the path does not exist or leads to
// null; an object or array there is an error.
func (p Path) Lookup(doc any) (value string, found bool, err error) {
	cur := doc
	for _, seg := range p {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[seg]
			if !ok {
				return "", false, nil
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return "", false, nil
			}
			cur = v[i]
		default:
			return "", false, nil
		}
	}
	switch v := cur.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case json.Number:
		return v.String(), true, nil
	case bool:
		return strconv.FormatBool(v), true, nil
	default:
		return "", false, fmt.Errorf("JSON path %s holds an object or array, not a value", p)
	}
}

// Decode parses body as one JSON value, numbers kept as json.Number.
func Decode(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return doc, nil
}
