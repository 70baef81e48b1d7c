package ws

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
)

// Encode flattens structured parameters into PHP bracket notation, the
// only form Moodle's REST server reads:
//
//	{"users": []map[string]any{{"username": "jdoe"}}} → users[0][username]=jdoe
//
// Values may be strings, integers, booleans (sent as 1/0), slices and maps
// of those. Nil values, and slices and maps without values, are left out.
// Names are Moodle parameter names: letters, digits and _, a top-level name
// not starting with a digit. Anything else would be read back by PHP as a
// different structure, so it is an error.
func Encode(params map[string]any) (url.Values, error) {
	v := url.Values{}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !topName.MatchString(k) {
			return nil, fmt.Errorf("web-service parameter name %q: only letters, digits and _ (not first) are allowed", k)
		}
		if err := flatten(v, k, params[k]); err != nil {
			return nil, err
		}
	}
	return v, nil
}

var (
	topName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	keyName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

func flatten(into url.Values, name string, value any) error {
	switch x := value.(type) {
	case nil:
	case string:
		into.Set(name, x)
	case int:
		into.Set(name, strconv.Itoa(x))
	case int64:
		into.Set(name, strconv.FormatInt(x, 10))
	case bool:
		if x {
			into.Set(name, "1")
		} else {
			into.Set(name, "0")
		}
	case []string:
		for i, s := range x {
			into.Set(fmt.Sprintf("%s[%d]", name, i), s)
		}
	case []int64:
		for i, n := range x {
			into.Set(fmt.Sprintf("%s[%d]", name, i), strconv.FormatInt(n, 10))
		}
	case []map[string]any:
		for i, m := range x {
			if err := flatten(into, fmt.Sprintf("%s[%d]", name, i), m); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := flatten(into, fmt.Sprintf("%s[%d]", name, i), e); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !keyName.MatchString(k) {
				return fmt.Errorf("web-service parameter %s: key %q: only letters, digits and _ are allowed", name, k)
			}
			if err := flatten(into, name+"["+k+"]", x[k]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("web-service parameter %s: cannot encode a %T", name, value)
	}
	return nil
}
