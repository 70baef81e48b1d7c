package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/config"
)

// TestTypeMistakesInOperatorWords checks that a value of the wrong type is
// reported as the operator wrote it, with file, line and key, and never in
// Go's terms (cannot unmarshal, !!str, time.Duration).
func TestTypeMistakesInOperatorWords(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		main string
		lms  string
		want string // file:line: key: message
	}{
		{
			name: "duration in days",
			main: "storage:\n  retention: 90d\n" + minimalMain,
			want: `cvbridge.yaml:2: storage.retention: "90d" is not a duration; write it like 90m, 36h or 2160h (Go durations have no d`,
		},
		{
			name: "duration without a unit",
			main: minimalMain + "    timeout: 30\n",
			want: `cvbridge.yaml:5: targets.coachview.timeout: "30" is not a duration: it needs a unit; write it like 30s, 30m or 30h`,
		},
		{
			name: "whole number",
			main: minimalMain + "    concurrency: many\n",
			want: `cvbridge.yaml:5: targets.coachview.concurrency: "many" is not a whole number`,
		},
		{
			name: "number with a fraction",
			main: "results:\n  decimals: 1.5\n" + minimalMain,
			want: `cvbridge.yaml:2: results.decimals: "1.5" is not a whole number`,
		},
		{
			name: "true or false",
			main: minimalMain,
			lms:  "type: csvdrop\nattendance: sometimes\n",
			want: `x.yaml:2: attendance: "sometimes" is not true or false`,
		},
		{
			name: "list given one value",
			main: minimalMain,
			lms:  "type: csvdrop\nenrol_codes: MOO-*\n",
			want: `x.yaml:2: enrol_codes: "MOO-*" is not a list; write [MOO-*], or one "- MOO-*" line per item below the key`,
		},
		{
			name: "mapping given one value",
			main: "targets: coachview\n",
			want: `cvbridge.yaml:1: targets: "coachview" is not a mapping; write its keys below it, one "key: value" per line, indented`,
		},
		{
			name: "single value given a list",
			main: "timezone: [Europe/Amsterdam]\n" + minimalMain,
			want: `cvbridge.yaml:1: timezone: must be a single value, not a list`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lms := map[string]string{}
			if tc.lms != "" {
				lms["x.yaml"] = tc.lms
			}
			_, err := config.Load(writeConfig(t, tc.main, lms))
			require.Error(t, err)
			msg := baseNames(err.Error())
			assert.Contains(t, msg, tc.want)
			for _, goTalk := range []string{"cannot unmarshal", "!!", "time.Duration", "[]string", "map["} {
				assert.NotContains(t, msg, goTalk)
			}
		})
	}
}

// TestDuplicateConnectionNameHasLine checks that both files are located.
func TestDuplicateConnectionNameHasLine(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, minimalMain, map[string]string{
		"a.yaml": "name: same\ntype: csvdrop\n",
		"b.yml":  "type: csvdrop\nname: same\n",
	})
	_, err := config.Load(path)
	require.Error(t, err)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, "b.yml", filepath.Base(cerr.File))
	assert.Equal(t, 2, cerr.Line)
	assert.Contains(t, baseNames(err.Error()), `b.yml:2: name: connection name "same" is also used by `+
		filepath.Join(filepath.Dir(path), "lms.d", "a.yaml")+":1")
}

// TestLoadReportsEveryProblem checks that Load goes on after a mistake: every
// invalid key of a file, every target and every LMS file is reported.
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	main := `timezon: UTC
storage:
  retention: 90d
targets:
  a:
    url: https://a.example/r
    secret_file: secret
    hash: md5
  b:
    url: http://b.example/r
    secret_file: secret
    concurrency: many
`
	path := writeConfig(t, main, map[string]string{
		"one.yaml":   "type: csvdrop\ntarget: a\nshedule: '@hourly'\nattendance: sometimes\n",
		"two.yaml":   "type: csvdrop\ntarget: a\nschedule: every minute\n",
		"three.yaml": "name: one\ntype: csvdrop\ntarget: b\n",
	})
	_, err := config.Load(path)
	require.Error(t, err)
	msg := baseNames(err.Error())
	for _, want := range []string{
		`cvbridge.yaml:1: timezon: unknown key (did you mean "timezone"?)`,
		`cvbridge.yaml:3: storage.retention: "90d" is not a duration`,
		`cvbridge.yaml:8: targets.a.hash:`,
		`cvbridge.yaml:10: targets.b.url: http://b.example/r uses http`,
		`cvbridge.yaml:12: targets.b.concurrency: "many" is not a whole number`,
		`one.yaml:3: shedule: unknown key (did you mean "schedule"?)`,
		`one.yaml:4: attendance: "sometimes" is not true or false`,
		`two.yaml:3: schedule: "every minute"`,
		`three.yaml:1: name: connection name "one" is also used by ` + filepath.Join(filepath.Dir(path), "lms.d", "one.yaml") + " (its file's name)",
	} {
		assert.Contains(t, msg, want)
	}
	assert.Len(t, strings.Split(strings.TrimSpace(msg), "\n"), 9, msg)
}

// baseNames shortens the absolute paths of a temporary directory in msg to
// the names the operator reads (cvbridge.yaml, x.yaml).
func baseNames(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		file, rest, ok := strings.Cut(l, ":")
		if ok && filepath.IsAbs(file) {
			lines[i] = filepath.Base(file) + ":" + rest
		}
	}
	return strings.Join(lines, "\n")
}

// TestInboundSectionReportsEveryProblem: the public and inbound sections
// are checked to the end too, not up to their first mistake.
func TestInboundSectionReportsEveryProblem(t *testing.T) {
	t.Parallel()
	main := `targets:
  a:
    url: https://a.example/r
    secret_file: secret
public:
  addr: ":8443"
  hosts: ["bridge.example.nl:443"]
  tls:
    off: true
inbound:
  personal_data_retention: -1h
  enrolment_link:
    path: coachview/enrolment
  webhooks:
    - name: one
      path: /hooks/cv
      token_env: TOKEN
      event_path: Event
    - name: two
      path: /hooks/cv
      token_env: TOKEN
      event_path: Event
`
	path := writeConfig(t, main, map[string]string{"one.yaml": "type: csvdrop\ntarget: a\nsettings:\n  folder: drop\n  columns:\n    person: p\n    passed: g\n    elearningcode: c\n"})
	_, err := config.Load(path)
	require.Error(t, err)
	msg := baseNames(err.Error())
	for _, want := range []string{
		"inbound.personal_data_retention: must not be negative",
		`public.tls.off: plain HTTP is allowed on a loopback address only`,
		`public.hosts: "bridge.example.nl:443" is not a host name`,
		"inbound.enrolment_link.path: must start with /",
		`inbound.webhooks[1].path: "/hooks/cv" is also used by inbound.webhooks[0]`,
	} {
		assert.Contains(t, msg, want)
	}
}

// TestTargetURLMistakesShowNoSecret: Coachview's results URL carries its
// key in the plugin parameter, and an operator may paste credentials into
// it; a message about the URL (shown by check, logged by a refused reload)
// names the URL without either. Credentials in it are refused.
func TestTargetURLMistakesShowNoSecret(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"http://user:Pa55word@coachview.example.com/x?plugin=SECRETPLUGIN",
		"https://user:Pa55word@coachview.example.com/x?plugin=SECRETPLUGIN",
		"ftp://coachview.example.com/x?plugin=SECRETPLUGIN",
		"coachview.example.com/x?plugin=SECRETPLUGIN",
	} {
		path := writeConfig(t, "targets:\n  a:\n    url: "+u+"\n    secret_file: secret\n", nil)
		_, err := config.Load(path)
		require.Error(t, err, u)
		assert.Contains(t, err.Error(), "targets.a.url", u)
		assert.NotContains(t, err.Error(), "Pa55word", u)
		assert.NotContains(t, err.Error(), "SECRETPLUGIN", u)
	}
}

// TestSecondDocumentIsReported: a file read as one YAML document ignored
// everything after a `---`, such as a second connection pasted into an LMS
// file, and check passed; now the second document is reported with its line.
func TestSecondDocumentIsReported(t *testing.T) {
	t.Parallel()
	_, err := config.Load(writeConfig(t, minimalMain+"---\nbogus: 1\n", nil))
	require.Error(t, err)
	assert.Equal(t, "cvbridge.yaml:5: a second YAML document (after ---) is not read: keep one document per file (one LMS connection per file in the LMS directory)",
		baseNames(err.Error()))
	_, err = config.Load(writeConfig(t, minimalMain, map[string]string{"a.yaml": minimalLMS + "---\n" + minimalLMS}))
	require.Error(t, err)
	assert.Contains(t, baseNames(err.Error()), "a.yaml:4: a second YAML document (after ---) is not read")

	ok := writeConfig(t, "---\n"+minimalMain, map[string]string{"a.yaml": "---\n" + minimalLMS + "...\n", "b.yaml": "name: b\ntype: csvdrop\nsettings:\n  folder: drop2\n---\n"})
	_, err = config.Load(ok)
	assert.NoError(t, err, "one document, with its markers, is fine; so is an empty one after a trailing ---")
}

// TestNamesAreChecked: a target's or connection's name appears in log
// lines, metrics labels and file names; one with a newline could forge a
// log line. Names are refused unless made of a-z, 0-9, . - _; an LMS file
// named .YAML is read like .yaml.
func TestNamesAreChecked(t *testing.T) {
	t.Parallel()
	main := "targets:\n  \"coach view\":\n    url: https://cv.example/r\n    secret_file: secret\n"
	_, err := config.Load(writeConfig(t, main, map[string]string{"a.yaml": "name: \"csv\\nlevel=ERROR\"\n" + minimalLMS}))
	require.Error(t, err)
	msg := baseNames(err.Error())
	assert.Contains(t, msg, `cvbridge.yaml:2: targets.coach view: target name "coach view": use up to 64 letters, digits`)
	assert.Contains(t, msg, `a.yaml:1: name: "csv\nlevel=ERROR": use up to 64 letters, digits`)

	cfg, err := config.Load(writeConfig(t, minimalMain, map[string]string{"Export.YAML": minimalLMS, "moodle.prod.yml": minimalLMS}))
	require.NoError(t, err)
	var names []string
	for _, c := range cfg.Connections {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"Export", "moodle.prod"}, names)
}

// TestInboundHandlerMistakesAllAtOnce: the OAuth server's and the webhooks'
// own checks (hash and secret files, secret length, event path) ran only
// when the daemon was assembled, one at a time, without a line, after check
// had printed "ok configuration"; they are now mistakes of the file like
// the others, every one with its line.
func TestInboundHandlerMistakesAllAtOnce(t *testing.T) {
	t.Parallel()
	main := `targets:
  a:
    url: https://a.example/r
    secret_file: secret
public:
  addr: "127.0.0.1:8443"
  tls:
    off: true
inbound:
  oauth:
    admin_password_hash_file: missing.hash
    clients:
      - id: coachview
        secret_file: secret
        redirect_uris: [https://cv.example/cb]
  webhooks:
    - name: one
      path: /hooks/one
      signing_secret_file: missing.secret
      event_path: Event
    - name: two
      path: /hooks/two
      signing_secret_file: secret
      event_path: ""
`
	path := writeConfig(t, main, map[string]string{"one.yaml": minimalLMS})
	_, err := config.Load(path)
	require.Error(t, err)
	msg := baseNames(err.Error())
	for _, want := range []string{
		"cvbridge.yaml:10: inbound.oauth: admin_password_hash: cannot read",
		"cvbridge.yaml:17: inbound.webhooks[0]: webhook subscription \"one\": signing secret: cannot read",
		"cvbridge.yaml:21: inbound.webhooks[1]: webhook subscription \"two\": event_path",
	} {
		assert.Contains(t, msg, want)
	}
}

// TestRepeatedKeyIsTheOnlyMistake: yaml.v3 stops decoding at a key given
// twice, so everything after it seemed missing ("url: required" beside the
// repeated hash); now the repeat is the one mistake reported.
func TestRepeatedKeyIsTheOnlyMistake(t *testing.T) {
	t.Parallel()
	main := "targets:\n  coachview:\n    hash: sha512\n    hash: sha256\n    url: https://cv.example/r\n    secret_file: secret\n"
	_, err := config.Load(writeConfig(t, main, map[string]string{"a.yaml": "type: csvdrop\nsettings:\n  folder: drop\n  folder: other\n  columns:\n    person: p\n    passed: g\n    elearningcode: c\n"}))
	require.Error(t, err)
	assert.Equal(t, "cvbridge.yaml:4: targets.coachview.hash: is given twice (first on line 3): keep one\n"+
		"a.yaml:4: settings.folder: is given twice (first on line 3): keep one", baseNames(err.Error()))
}

// TestSyntaxErrorOnTheFirstLine: yaml.v3 leaves the line out of a syntax
// error on the first line; it is named all the same, and a tab is called
// a tab.
func TestSyntaxErrorOnTheFirstLine(t *testing.T) {
	t.Parallel()
	_, err := config.Load(writeConfig(t, minimalMain+"log:\n  level: \"de\x01bug\"\n", nil))
	require.Error(t, err)
	assert.NotContains(t, baseNames(err.Error()), "cvbridge.yaml:1:", "a reader's error may be anywhere: no line is better than a wrong one")
	for main, want := range map[string]string{
		"timezone: Europe/Amsterdam: x\n" + minimalMain: "cvbridge.yaml:1: mapping values are not allowed in this context",
		"\ttimezone: UTC\n" + minimalMain:               "cvbridge.yaml:1: found character that cannot start any token (a tab? YAML is indented with spaces only",
		minimalMain + "\ttimezone: UTC\n":               ": found a tab character that violates indentation (YAML is indented with spaces only)",
	} {
		_, err := config.Load(writeConfig(t, main, nil))
		require.Error(t, err)
		assert.Contains(t, baseNames(err.Error()), want)
	}
}

// TestAdminHashEnvMistakeNamesItsKey: a mistake in admin.password_hash_env
// was reported as admin.password_hash_file.
func TestAdminHashEnvMistakeNamesItsKey(t *testing.T) {
	t.Parallel()
	_, err := config.Load(writeConfig(t, minimalMain+"admin:\n  password_hash_env: CVBRIDGE_TEST_UNSET_HASH\n", nil))
	require.Error(t, err)
	assert.Contains(t, baseNames(err.Error()), "cvbridge.yaml:6: admin.password_hash_env: password_hash_env: the environment variable CVBRIDGE_TEST_UNSET_HASH is not set")
}
