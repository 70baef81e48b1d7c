package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// writeConfig lays out a configuration directory with a secret file and
// returns the main file's path.
func writeConfig(t *testing.T, main string, lms map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret\n"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "lms.d"), 0o755))
	for name, body := range lms {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", name), []byte(body), 0o644))
	}
	path := filepath.Join(dir, "cvbridge.yaml")
	require.NoError(t, os.WriteFile(path, []byte(main), 0o644))
	return path
}

const minimalMain = `targets:
  coachview:
    url: https://training.coachview.net/elearning/result.aspx?plugin=abc
    secret_file: secret
`

const minimalLMS = `type: csvdrop
settings:
  folder: drop
`

func TestLoadAppliesDefaults(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, minimalMain, map[string]string{"export.yaml": minimalLMS})
	cfg, err := config.Load(path)
	require.NoError(t, err)

	assert.Equal(t, "Europe/Amsterdam", cfg.Location.String())
	assert.Equal(t, filepath.Join(filepath.Dir(path), "outbox.db"), cfg.Storage.Path)
	assert.Equal(t, 90*24*time.Hour, cfg.Storage.Retention)
	target := cfg.Targets["coachview"]
	require.NotNil(t, target)
	assert.Equal(t, []byte("s3cret"), target.Secret, "the trailing newline of the secret file is not part of the secret")
	assert.Equal(t, sign.SHA512, target.Algorithm)
	assert.Equal(t, delivery.DefaultSettings(), target.Settings, "keys a target leaves out keep the delivery defaults")

	require.Len(t, cfg.Connections, 1)
	conn := cfg.Connections[0]
	assert.Equal(t, "export", conn.Name, "the name defaults to the file name")
	assert.Equal(t, "coachview", conn.Target, "the only target is the default")
	assert.True(t, conn.ReplacesPending())
	assert.Equal(t, "@every 1m", conn.Schedule)
	require.NotNil(t, conn.Cron)
}

func TestLoadOverridesOneDeliveryKey(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, minimalMain+"    concurrency: 4\n    retry:\n      not_found:\n        interval: 2h\n", nil)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	s := cfg.Targets["coachview"].Settings
	assert.Equal(t, 4, s.Concurrency)
	assert.Equal(t, 2*time.Hour, s.Retry.NotFound.Interval)
	assert.Equal(t, delivery.DefaultSettings().Retry.NotFound.MaxAge, s.Retry.NotFound.MaxAge, "a sibling key keeps its default")
}

func TestSecretFromEnvironment(t *testing.T) {
	t.Setenv("CVBRIDGE_TEST_SECRET", "from-env")
	path := writeConfig(t, "targets:\n  cv:\n    url: https://secure.coachview.net/r\n    secret_env: CVBRIDGE_TEST_SECRET\n    hash: sha256\n", nil)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, []byte("from-env"), cfg.Targets["cv"].Secret)
	assert.Equal(t, sign.SHA256, cfg.Targets["cv"].Algorithm)
}

func TestLoadErrorsNameFileLineAndKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		main     string
		lms      string
		file     string // base name of the file the error must name
		line     int
		contains string
	}{
		{name: "unknown top-level key", main: "timezon: UTC\n" + minimalMain, file: "cvbridge.yaml", line: 1, contains: `timezon: unknown key (did you mean "timezone"?)`},
		{name: "unknown target key", main: minimalMain + "    secret: plain\n", file: "cvbridge.yaml", line: 5, contains: "targets.coachview.secret: unknown key"},
		{name: "wrong type", main: minimalMain + "    concurrency: many\n", file: "cvbridge.yaml", line: 5, contains: `targets.coachview.concurrency: "many" is not a whole number`},
		{name: "bad duration", main: minimalMain + "    timeout: soon\n", file: "cvbridge.yaml", line: 5, contains: "timeout"},
		{name: "invalid delivery setting", main: minimalMain + "    concurrency: 0\n", file: "cvbridge.yaml", line: 5, contains: "targets.coachview.concurrency: must be at least 1"},
		{name: "delivery settings that disagree", main: minimalMain + "    timeout: 10s\n    connect_timeout: 5m\n", file: "cvbridge.yaml", line: 6, contains: "targets.coachview.connect_timeout: must not exceed timeout (10s)"},
		{name: "negative record_ahead", main: minimalMain + "    record_ahead: -3\n", file: "cvbridge.yaml", line: 5, contains: "targets.coachview.record_ahead: must be 0 or positive"},
		{name: "nested retry setting", main: minimalMain + "    retry:\n      transient:\n        base: 1m\n        cap: 30s\n", file: "cvbridge.yaml", line: 8, contains: "targets.coachview.retry.transient.cap: must be at least retry.transient.base"},
		{name: "admin setting", main: "admin:\n  listen: nonsense\n" + minimalMain, file: "cvbridge.yaml", line: 2, contains: `admin.listen: "nonsense" is not host:port`},
		{name: "missing LMS directory", main: "lms_dir: nope.d\n" + minimalMain, file: "cvbridge.yaml", line: 1, contains: "lms_dir: cannot read the LMS directory"},
		{name: "unknown time zone", main: "timezone: Mars/Olympus\n" + minimalMain, file: "cvbridge.yaml", line: 1, contains: "unknown time zone"},
		{name: "plain http to a remote host", main: "targets:\n  cv:\n    url: http://coachview.example/r\n    secret_file: secret\n", file: "cvbridge.yaml", line: 3, contains: "https only"},
		{name: "missing secret file", main: "targets:\n  cv:\n    url: https://x.example/r\n    secret_file: nope\n", file: "cvbridge.yaml", line: 4, contains: "cannot read the shared secret"},
		{name: "no secret", main: "targets:\n  cv:\n    url: https://x.example/r\n", file: "cvbridge.yaml", contains: "the shared secret is required"},
		{name: "unset secret env", main: "targets:\n  cv:\n    url: https://x.example/r\n    secret_env: CVBRIDGE_SURELY_UNSET\n", file: "cvbridge.yaml", line: 4, contains: "CVBRIDGE_SURELY_UNSET is not set"},
		{name: "unknown hash", main: "targets:\n  cv:\n    url: https://x.example/r\n    secret_file: secret\n    hash: md5\n", file: "cvbridge.yaml", line: 5, contains: "md5"},
		{name: "no targets", main: "timezone: UTC\n", file: "cvbridge.yaml", contains: "at least one Coachview target"},
		{name: "syntax error", main: "targets: [\n", file: "cvbridge.yaml", contains: "did not find expected"},
		{name: "postgres without dsn", main: "storage:\n  driver: postgres\n" + minimalMain, file: "cvbridge.yaml", contains: "storage.dsn_file: the PostgreSQL connection string is required"},
		{name: "postgres with a path", main: "storage:\n  driver: postgres\n  path: x.db\n" + minimalMain, file: "cvbridge.yaml", line: 3, contains: "path is for driver sqlite"},
		{name: "sqlite with a dsn", main: "storage:\n  dsn_env: PG\n" + minimalMain, file: "cvbridge.yaml", contains: "dsn_file and dsn_env are for driver postgres"},
		{name: "unknown driver", main: "storage:\n  driver: oracle\n" + minimalMain, file: "cvbridge.yaml", line: 2, contains: "supported: sqlite, postgres"},
		{name: "lms unknown key", main: minimalMain, lms: "type: csvdrop\nshedule: '@hourly'\n", file: "x.yaml", line: 2, contains: `shedule: unknown key (did you mean "schedule"?)`},
		{name: "lms bad schedule", main: minimalMain, lms: "type: csvdrop\nschedule: every minute\n", file: "x.yaml", line: 2, contains: "schedule"},
		{name: "lms unknown target", main: minimalMain, lms: "type: csvdrop\ntarget: other\n", file: "x.yaml", line: 2, contains: `unknown target "other"`},
		{name: "lms bad enrol pattern", main: minimalMain, lms: "type: csvdrop\nenrol_codes: [\"MOO-[\"]\n", file: "x.yaml", line: 2, contains: "is not a valid pattern"},
		{name: "lms missing type", main: minimalMain, lms: "name: x\n", file: "x.yaml", contains: "type: required"},
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
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			assert.Equal(t, tc.file, filepath.Base(cerr.File))
			if tc.line > 0 {
				assert.Equal(t, tc.line, cerr.Line, "line of %q", err.Error())
			}
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
}

func TestOneEnrolDefault(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, minimalMain, map[string]string{
		"a.yaml": "type: csvdrop\nenrol_default: true\n",
		"b.yaml": "type: csvdrop\nenrol_default: true\n",
	})
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "b.yaml:2: enrol_default: only one LMS connection may take the codes no connection lists")
}

func TestPostgresStorageDSNFromFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "storage:\n  driver: postgres\n  dsn_file: dsn\n  migrate: false\n"+minimalMain, nil)
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), "dsn"), []byte("postgres://cvbridge@db/cvbridge\n"), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, "postgres://cvbridge@db/cvbridge", cfg.Storage.DSN)
	assert.False(t, cfg.Storage.MigratesAtStart())
}

func TestDuplicateConnectionNames(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, minimalMain, map[string]string{
		"a.yaml": "name: same\ntype: csvdrop\n",
		"b.yml":  "name: same\ntype: csvdrop\n",
	})
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `connection name "same" is also used by`)
}

// TestExamplesLoad keeps the annotated examples true: they must load, and
// every value they show must be the default.
func TestExamplesLoad(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	for _, dir := range []string{"../../examples", "../../examples/quickstart"} {
		t.Run(dir, func(t *testing.T) {
			work := t.TempDir()
			copyTree(t, dir, work)
			main := filepath.Join(work, "cvbridge.yaml")
			require.FileExists(t, main)
			// The examples point at a system secret file; give them one here.
			cfgText, err := os.ReadFile(main)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(work, "secret"), []byte("x"), 0o600))
			cfgText = []byte(strings.ReplaceAll(string(cfgText), "/etc/cvbridge/coachview.secret", "secret"))
			require.NoError(t, os.WriteFile(main, cfgText, 0o644))

			cfg, err := config.Load(main)
			require.NoError(t, err)
			assert.NotEmpty(t, cfg.Connections)
			if dir == "../../examples" {
				assert.Equal(t, delivery.DefaultSettings(), cfg.Targets["coachview"].Settings,
					"examples/cvbridge.yaml must show the defaults")
				defaults := config.Defaults()
				assert.Equal(t, defaults.Storage.Retention, cfg.Storage.Retention)
				assert.Equal(t, defaults.Results, config.Results{Decimals: cfg.Results.Decimals, Rounding: cfg.Results.Rounding})
			}
		})
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			if rel != "." && filepath.Base(p) != "lms.d" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	}))
}

// TestStateDir: the service (with systemd's STATE_DIRECTORY) and a shell
// (without) find the packaged configuration's state in the same place.
func TestStateDir(t *testing.T) {
	packaged := &config.Config{File: "/etc/cvbridge/cvbridge.yaml"}
	elsewhere := &config.Config{File: "/srv/bridge/cvbridge.yaml"}
	t.Setenv("STATE_DIRECTORY", "")
	assert.Equal(t, "/var/lib/cvbridge", packaged.StateDir(), "a shell reading the packaged configuration")
	assert.Equal(t, "/srv/bridge", elsewhere.StateDir())
	t.Setenv("STATE_DIRECTORY", "/var/lib/cvbridge")
	assert.Equal(t, "/var/lib/cvbridge", packaged.StateDir(), "the service")
}
