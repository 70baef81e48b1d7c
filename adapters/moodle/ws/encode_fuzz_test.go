package ws_test

import (
	"net/url"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
)

// FuzzEncodeRoundTrip encodes structured parameters and reads them back as
// PHP (and the stand-in Moodle) does: what goes in comes out, or Encode
// refuses a name PHP would read as another structure.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("users", "username", "jdoe", int64(5), true)
	f.Add("options", "value", "a&b=c[0]", int64(-1), false)
	f.Add("values", "0", "", int64(0), true)
	f.Add("users", "user[name]", "x", int64(1), false)
	f.Add("1st", "", "\xff\x00é", int64(1<<62), true)
	f.Fuzz(func(t *testing.T, name, key, value string, n int64, flag bool) {
		params := map[string]any{
			name: []map[string]any{
				{key: value, "n": n, "flag": flag, "skip": nil},
				{"values": []string{value, ""}, "nested": map[string]any{key: []int64{n, n + 1}}},
				{},
			},
			"ids":  []any{n, value, nil, flag, int(n % 1000)},
			"none": []string{},
		}
		form, err := ws.Encode(params)
		if !namesValid(params) {
			require.Error(t, err, "name %q or key %q must be refused", name, key)
			return
		}
		require.NoError(t, err)
		parsed, err := url.ParseQuery(form.Encode())
		require.NoError(t, err)
		got, err := moodletest.ParseBrackets(parsed)
		require.NoError(t, err)
		want, _ := asPHP(params)
		require.Equal(t, want, got)
	})
}

var (
	topName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	keyName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// namesValid reports whether every name in params is one Encode accepts.
func namesValid(params map[string]any) bool {
	var keysValid func(v any) bool
	keysValid = func(v any) bool {
		switch x := v.(type) {
		case []map[string]any:
			for _, m := range x {
				if !keysValid(m) {
					return false
				}
			}
		case []any:
			for _, e := range x {
				if !keysValid(e) {
					return false
				}
			}
		case map[string]any:
			for k, e := range x {
				if !keyName.MatchString(k) || !keysValid(e) {
					return false
				}
			}
		}
		return true
	}
	for k, v := range params {
		if !topName.MatchString(k) || !keysValid(v) {
			return false
		}
	}
	return true
}

// asPHP is what PHP reads back from v's encoding: strings, lists as maps
// keyed "0", "1", …; nil and empty lists and maps are absent (ok false).
func asPHP(v any) (any, bool) {
	list := func(n int, at func(int) any) (any, bool) {
		out := map[string]any{}
		for i := range n {
			if e, ok := asPHP(at(i)); ok {
				out[strconv.Itoa(i)] = e
			}
		}
		return out, len(out) > 0
	}
	switch x := v.(type) {
	case nil:
		return nil, false
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		if x {
			return "1", true
		}
		return "0", true
	case []string:
		return list(len(x), func(i int) any { return x[i] })
	case []int64:
		return list(len(x), func(i int) any { return x[i] })
	case []any:
		return list(len(x), func(i int) any { return x[i] })
	case []map[string]any:
		return list(len(x), func(i int) any { return x[i] })
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if p, ok := asPHP(e); ok {
				out[k] = p
			}
		}
		return out, len(out) > 0
	}
	panic("asPHP: unexpected type")
}
