package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeAnswer feeds arbitrary answers to the decoder: it never panics,
// and every answer is either a value (HTTP 200, valid JSON, no exception
// key) or a classified *Error naming the function.
func FuzzDecodeAnswer(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `null`},
		{200, `[]`},
		{200, `[{"id":2,"username":"anna","idnumber":"P100"}]`},
		{200, `{"courses":[{"id":2,"shortname":"vca"}],"warnings":[]}`},
		{200, `{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`},
		{200, `{"exception":"dml_read_exception","errorcode":"dmlreadexception","message":"Error reading from database"}`},
		{200, `{"exception":null}`},
		{200, `{"exception":1,"errorcode":[],"message":{}}`},
		{200, `<html>Site maintenance</html>`},
		{200, ``},
		{200, `{"a":`},
		{403, ``},
		{404, `Not Found`},
		{502, `Bad Gateway`},
		{301, ``},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var shaped struct {
			Courses []struct {
				ID int64 `json:"id"`
			} `json:"courses"`
		}
		for _, out := range []any{new(any), &shaped, nil} {
			err := decodeAnswer("core_course_get_courses_by_field", status, body, out)
			if err != nil {
				var e *Error
				require.True(t, errors.As(err, &e), "%T is not a *ws.Error", err)
				require.Equal(t, "core_course_get_courses_by_field", e.Function)
				require.Contains(t, []Kind{Transient, Permanent}, e.Kind)
				require.NotEmpty(t, e.Error())
				continue
			}
			require.Equal(t, 200, status, "only HTTP 200 carries a value")
			trimmed := bytes.TrimSpace(body)
			require.True(t, json.Valid(trimmed), "a value is valid JSON")
			var obj map[string]json.RawMessage
			if json.Unmarshal(trimmed, &obj) == nil {
				_, has := obj["exception"]
				require.False(t, has, "an object with an exception key is an error")
			}
		}
	})
}
