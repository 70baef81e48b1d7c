// Package config owns cvbridge's configuration: the main file (cvbridge.yaml:
// storage, targets, time zone, logging, result options) and one YAML file per
// LMS connection in a directory (lms.d/ by default).
//
// Decoding is strict (bridge/strictyaml): an unknown key or a value of the
// wrong type fails with file, line and key. Secrets are never written in the
// files themselves, only referenced by file path or environment variable.
// Adapter-specific settings are left as a YAML node, which the adapter
// registry (adapters.Build) decodes into the settings type the adapter
// declared.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/admin"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

// Config is the whole, validated configuration.
type Config struct {
	// TimeZone is the provider's time zone: completion dates are calendar
	// dates there (Europe/Amsterdam).
	TimeZone string `yaml:"timezone"`
	// LMSDir holds one YAML file per LMS connection (lms.d, relative to this file).
	LMSDir  string             `yaml:"lms_dir"`
	Storage Storage            `yaml:"storage"`
	Log     Log                `yaml:"log"`
	Results Results            `yaml:"results"`
	Targets map[string]*Target `yaml:"targets"`
	// Admin is the admin listener: health, readiness, metrics, dashboard.
	Admin admin.Settings `yaml:"admin"`
	// Public is the listener Coachview calls (off unless public.addr is set).
	Public Public `yaml:"public"`
	// Inbound configures enrolments from Coachview.
	Inbound Inbound `yaml:"inbound"`

	// File is the path the configuration was loaded from.
	File string `yaml:"-"`
	// Location is TimeZone loaded.
	Location *time.Location `yaml:"-"`
	// Connections are the LMS files, sorted by name.
	Connections []*Connection `yaml:"-"`
	// AdminPasswordHash is the dashboard's bcrypt hash, nil when none is set.
	AdminPasswordHash []byte `yaml:"-"`
}

// Storage says where the outbox lives.
type Storage struct {
	// Driver is the backend: sqlite (the embedded default, one server) or
	// postgres (several daemons may share one database).
	Driver string `yaml:"driver"`
	// Path is the SQLite file (default: outbox.db in the state directory,
	// see Config.StateDir).
	Path string `yaml:"path"`
	// DSNFile is a file holding the PostgreSQL connection string
	// (postgres://user:password@host/db?sslmode=verify-full).
	DSNFile string `yaml:"dsn_file"`
	// DSNEnv names an environment variable holding the connection string.
	DSNEnv string `yaml:"dsn_env"`
	// Migrate applies the store's schema migrations at start (true); when
	// false, run `cvbridge migrate` before starting a new version.
	Migrate *bool `yaml:"migrate"`
	// Retention is how long delivered, ignored, rejected and cancelled
	// results are kept (2160h = 90 days; 0 keeps them forever).
	Retention time.Duration `yaml:"retention"`

	// DSN is the loaded PostgreSQL connection string. It is never logged.
	DSN string `yaml:"-"`
}

// MigratesAtStart reports the effective migrate setting.
func (s Storage) MigratesAtStart() bool { return s.Migrate == nil || *s.Migrate }

// Log sets up logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Results tunes how results are rendered and checked.
type Results struct {
	// Decimals is the number of fraction digits of ResultaatDecimaal (2, at most 2).
	Decimals int `yaml:"decimals"`
	// Rounding is how an LMS value with more digits is rounded: half_up (default), half_even, down.
	Rounding string `yaml:"rounding"`
	// XSDFile is Coachview's official XSD, used instead of the bundled one when set.
	XSDFile string `yaml:"xsd_file"`
}

// Target is one Coachview results URL with its secret.
type Target struct {
	// URL is the "URL Resultaten" Coachview shows. https is required
	// except for loopback addresses (the local simulator).
	URL string `yaml:"url"`
	// SecretFile is a file holding the shared secret (a trailing newline is ignored).
	SecretFile string `yaml:"secret_file"`
	// SecretEnv names an environment variable holding the shared secret.
	SecretEnv string `yaml:"secret_env"`
	// Hash is Coachview's "Versleuteling resultaten webhook": sha512 (default), sha256 or sha1.
	Hash string `yaml:"hash"`

	delivery.Settings `yaml:",inline"`

	// Name is the target's key in the targets map.
	Name string `yaml:"-"`
	// Secret is the loaded secret. It is never logged.
	Secret []byte `yaml:"-"`
	// Algorithm is Hash parsed.
	Algorithm sign.Algorithm `yaml:"-"`
}

// UnmarshalYAML decodes a target over the delivery defaults, so every key a
// target leaves out keeps its default. Beside a value of the wrong type it
// keeps what it could decode, so the target's other keys can be checked.
func (t *Target) UnmarshalYAML(n *yaml.Node) error {
	type plain Target // plain has no UnmarshalYAML: no recursion
	p := plain{Settings: delivery.DefaultSettings()}
	err := n.Decode(&p)
	*t = Target(p)
	return err
}

// Connection is one LMS file.
type Connection struct {
	// Name identifies the connection in logs, the store and the CLI (the
	// file name without extension when empty).
	Name string `yaml:"name"`
	// Type is the adapter kind, e.g. csvdrop.
	Type string `yaml:"type"`
	// Target is the key of the Coachview target its results go to (the
	// only target when there is one).
	Target string `yaml:"target"`
	// Schedule is when to poll: a cron expression ("*/5 * * * *") or a
	// descriptor ("@every 1m", the default, "@hourly").
	Schedule string `yaml:"schedule"`
	// ReplacePending lets a newer, different completion replace a queued
	// one that was not yet delivered (true).
	ReplacePending *bool `yaml:"replace_pending"`
	// Attendance emits the attendance element for this connection (false).
	Attendance bool `yaml:"attendance"`
	// EnrolCodes are the e-learning codes (path.Match patterns such as
	// "MOO-*") whose enrolments from Coachview this connection carries out.
	EnrolCodes []string `yaml:"enrol_codes"`
	// EnrolDefault makes this connection enrol every code no connection
	// lists (at most one connection; the only enrolling one by default).
	EnrolDefault bool `yaml:"enrol_default"`
	// Settings are the adapter's own settings.
	Settings yaml.Node `yaml:"settings"`

	// File is the path of the LMS file.
	File string `yaml:"-"`
	// Cron is Schedule parsed.
	Cron cron.Schedule `yaml:"-"`

	// root is the file's document, to find the line of a key.
	root *yaml.Node
}

// Errorf returns a mistake in the connection's file at key (a dotted path
// such as type or settings.folder), naming the key's line.
func (c *Connection) Errorf(key, format string, args ...any) error {
	line := 0
	if c.root != nil {
		line = keyLine(c.root, strings.Split(key, ".")...)
	}
	return &Error{File: c.File, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// InSettings names the keys of err, an adapter's mistake in the settings
// it was given, by their path in the connection's file: folder becomes
// settings.folder. Other errors are returned as they are.
func (c *Connection) InSettings(err error) error {
	var list Errors
	var one *Error
	switch {
	case errors.As(err, &list):
		moved := make(Errors, len(list))
		for i, e := range list {
			moved[i] = c.inSettings(e)
		}
		return moved
	case errors.As(err, &one):
		return c.inSettings(one)
	}
	return err
}

func (c *Connection) inSettings(e *Error) *Error {
	if e.File != c.File {
		return e
	}
	moved := *e
	moved.Key = strictyaml.Join("settings", e.Key)
	return &moved
}

// ReplacesPending reports the effective replace_pending setting.
func (c *Connection) ReplacesPending() bool { return c.ReplacePending == nil || *c.ReplacePending }

// Defaults returns a configuration with every default filled in.
func Defaults() Config {
	return Config{
		TimeZone: "Europe/Amsterdam",
		LMSDir:   "lms.d",
		Storage:  Storage{Driver: "sqlite", Retention: 90 * 24 * time.Hour},
		Log:      Log{Level: "info", Format: "text"},
		Results:  Results{Decimals: 2, Rounding: string(result.RoundHalfUp)},
		Admin:    admin.DefaultSettings(),
	}
}

// Load reads and validates the configuration at path and the LMS files it
// points to. Relative paths are resolved against the file's directory. A
// configuration with mistakes is refused with every mistake found (Errors).
func Load(path string) (*Config, error) {
	cfg, err := Inspect(path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Inspect loads the configuration at path as Load does, but along with
// every mistake (Errors, by file and line) it returns the configuration as
// far as it could be read, with every LMS file that could be parsed among
// its Connections, so `cvbridge check` can go on to build their adapters.
// The configuration is nil only when the main file cannot be read or parsed.
func Inspect(path string) (*Config, error) {
	cfg := Defaults()
	cfg.File = path
	root, err := readYAML(path)
	if err != nil {
		return nil, err
	}
	var errs Errors
	errs.Add(DecodeStrict(path, root, &cfg))
	errs.Add(cfg.resolve(root))
	return &cfg, errs.Sorted().Err()
}

// Dir is the directory relative paths are resolved against.
func (c *Config) Dir() string { return filepath.Dir(c.File) }

// Abs resolves p against the configuration's directory, by the rule the
// adapters' paths follow (kit.Resolve); "" stays "".
func (c *Config) Abs(p string) string {
	if p == "" {
		return p
	}
	return kit.Resolve(c.Dir(), p)
}

// ResultOptions returns the rendering options for a connection.
func (c *Config) ResultOptions(conn *Connection) result.Options {
	return result.Options{
		Location:   c.Location,
		Decimals:   c.Results.Decimals,
		Rounding:   result.Rounding(c.Results.Rounding),
		Attendance: conn != nil && conn.Attendance,
	}
}

// Connection returns the connection called name.
func (c *Config) Connection(name string) (*Connection, bool) {
	for _, conn := range c.Connections {
		if conn.Name == name {
			return conn, true
		}
	}
	return nil, false
}

// TargetNames lists the targets, sorted.
func (c *Config) TargetNames() []string {
	names := make([]string, 0, len(c.Targets))
	for n := range c.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolve checks what decoding cannot and fills in what follows from the
// configuration. It goes on after a mistake, to report them all.
func (c *Config) resolve(root *yaml.Node) Errors {
	fail := func(key, format string, args ...any) error {
		return &Error{File: c.File, Line: keyLine(root, strings.Split(key, ".")...), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	var errs Errors
	c.Location = time.UTC // until the time zone is known, to go on checking
	if loc, err := time.LoadLocation(c.TimeZone); err != nil {
		errs.Add(fail("timezone", "unknown time zone %q (use an IANA name such as Europe/Amsterdam)", c.TimeZone))
	} else {
		c.Location = loc
	}
	errs.Add(c.resolveStorage(fail))
	if c.Storage.Retention < 0 {
		errs.Add(fail("storage.retention", "must not be negative"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Add(fail("log.level", "must be debug, info, warn or error, not %q", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs.Add(fail("log.format", "must be text or json, not %q", c.Log.Format))
	}
	opts := c.ResultOptions(nil)
	if err := opts.Validate(); err != nil {
		errs.Add(fail("results", "%v", err))
	}
	c.Results.XSDFile = c.Abs(c.Results.XSDFile)
	c.Admin.PasswordHashFile = c.Abs(c.Admin.PasswordHashFile)
	if err := c.Admin.Validate(); err != nil {
		errs.Add(keyed(err, "admin", fail))
	} else if hash, err := c.Admin.PasswordHash(); err != nil {
		key := "admin.password_hash_file"
		if c.Admin.PasswordHashFile == "" {
			key = "admin.password_hash_env"
		}
		errs.Add(fail(key, "%s", strings.TrimPrefix(err.Error(), "admin: ")))
	} else {
		c.AdminPasswordHash = hash
	}
	errs.Add(c.resolveTargets(root, fail))
	errs.Add(c.loadConnections(fail))
	errs.Add(c.resolveInbound(fail))
	return errs
}

// resolveStorage checks the storage section and fills in the SQLite path.
func (c *Config) resolveStorage(fail func(key, format string, args ...any) error) error {
	switch c.Storage.Driver {
	case "sqlite":
		if c.Storage.Path == "" {
			c.Storage.Path = filepath.Join(c.StateDir(), "outbox.db")
		}
		c.Storage.Path = c.Abs(c.Storage.Path)
		if c.Storage.DSNFile != "" || c.Storage.DSNEnv != "" {
			return fail("storage.driver", "dsn_file and dsn_env are for driver postgres")
		}
	case "postgres":
		if c.Storage.Path != "" {
			return fail("storage.path", "path is for driver sqlite; postgres takes dsn_file or dsn_env")
		}
		dsn, err := c.readSecret(c.Storage.DSNFile, c.Storage.DSNEnv, "dsn_file", "dsn_env", "the PostgreSQL connection string")
		if err != nil {
			return fail("storage."+err.key, "%s", err.msg)
		}
		c.Storage.DSN = string(dsn)
	default:
		return fail("storage.driver", "unknown storage driver %q (supported: sqlite, postgres)", c.Storage.Driver)
	}
	return nil
}

// resolveTargets checks every target.
func (c *Config) resolveTargets(root *yaml.Node, fail func(key, format string, args ...any) error) Errors {
	var errs Errors
	// The decoder leaves out a target holding a value of the wrong type
	// (reported already): take the rest of it, so its other keys are
	// checked too and LMS files naming it do not fail as well.
	if n := valueAt(root, "targets"); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			name, v := n.Content[i].Value, n.Content[i+1]
			if _, ok := c.Targets[name]; !ok && v.Kind == yaml.MappingNode {
				if c.Targets == nil {
					c.Targets = map[string]*Target{}
				}
				t := &Target{}
				_ = t.UnmarshalYAML(v) // its mistake is reported
				c.Targets[name] = t
			}
		}
	}
	if len(c.Targets) == 0 {
		errs.Add(fail("targets", "at least one Coachview target is required"))
	}
	for _, name := range c.TargetNames() {
		t := c.Targets[name]
		if t == nil {
			errs.Add(fail("targets."+name, "is empty: url and secret_file or secret_env are required"))
			continue
		}
		t.Name = name
		if msg := nameMistake(name); msg != "" {
			errs.Add(fail("targets."+name, "target name %q: %s", name, msg))
		}
		errs.Add(c.resolveTarget(t, func(key, format string, args ...any) error {
			return fail(strings.TrimSuffix("targets."+name+"."+key, "."), format, args...)
		}))
	}
	return errs
}

func (c *Config) resolveTarget(t *Target, fail func(key, format string, args ...any) error) Errors {
	var errs Errors
	if err := checkTargetURL(t.URL); err != nil {
		errs.Add(fail("url", "%v", err))
	}
	if alg, err := sign.ParseAlgorithm(t.Hash); err != nil {
		errs.Add(fail("hash", "%v", err))
	} else {
		t.Algorithm = alg
	}
	if err := t.Settings.Validate(); err != nil {
		errs.Add(keyed(err, "", fail))
	}
	if secret, serr := c.readSecret(t.SecretFile, t.SecretEnv, "secret_file", "secret_env", "the shared secret"); serr != nil {
		errs.Add(fail(serr.key, "%s", serr.msg))
	} else {
		t.Secret = secret
	}
	return errs
}

// keyed reports err, a section's Validate result, through fail: each of
// its strictyaml.Errors at its own key below section (so at that key's
// line), anything else at section.
func keyed(err error, section string, fail func(key, format string, args ...any) error) Errors {
	var errs Errors
	var list strictyaml.Errors
	if !errors.As(err, &list) {
		errs.Add(fail(section, "%v", err))
		return errs
	}
	for _, e := range list {
		errs.Add(fail(strictyaml.Join(section, e.Key), "%s", e.Msg))
	}
	return errs
}

// secretError is a problem reading a secret, with the key to blame.
type secretError struct{ key, msg string }

// readSecret loads a secret from a file or an environment variable, exactly
// one of which must be set, through kit.ReadSecret (its one trimming rule;
// an unreadable file, an unset variable and an empty secret are refused),
// and blames the key that was set.
func (c *Config) readSecret(file, env, fileKey, envKey, what string) ([]byte, *secretError) {
	key := fileKey
	switch {
	case file != "" && env != "":
		return nil, &secretError{fileKey, fmt.Sprintf("set %s or %s, not both", fileKey, envKey)}
	case file == "" && env == "":
		return nil, &secretError{fileKey, fmt.Sprintf("%s is required: set %s (a file holding it) or %s", what, fileKey, envKey)}
	case env != "":
		key = envKey
	}
	secret, err := kit.ReadSecret(c.Dir(), file, env)
	var unreadable *fs.PathError
	switch {
	case errors.As(err, &unreadable):
		return nil, &secretError{key, fmt.Sprintf("cannot read %s: %v", what, unreadable)}
	case err != nil:
		return nil, &secretError{key, fmt.Sprintf("%s: %v", what, err)}
	}
	return []byte(secret), nil
}

// checkTargetURL accepts https URLs, and http only for loopback hosts, so a
// result never crosses a network unencrypted by mistake.
func checkTargetURL(raw string) error {
	if raw == "" {
		return errors.New("required: Coachview's \"URL Resultaten\"")
	}
	shown := kit.ShowURL(raw) // the plugin key stays out of the message
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s is not an absolute URL", shown)
	}
	if u.User != nil {
		return fmt.Errorf("%s holds a user name or password: Coachview's results URL carries none (its key is the plugin parameter)", shown)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%s uses http: Coachview is reached over https only (http is allowed for localhost, e.g. the simulator)", shown)
	default:
		return fmt.Errorf("%s: scheme must be https", shown)
	}
}

// scheduleParser accepts standard five-field cron expressions and descriptors such as @every 1m.
var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// loadConnections reads every LMS file, reporting the mistakes of each; a
// file whose name another file has already taken is left out. fail reports
// a mistake of the main file.
func (c *Config) loadConnections(fail func(key, format string, args ...any) error) Errors {
	dir := c.Abs(c.LMSDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		var errs Errors
		errs.Add(fail("lms_dir", "cannot read the LMS directory %s: %v", dir, err))
		return errs
	}
	var errs Errors
	seen := map[string]*Connection{}
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		conn, connErrs := c.loadConnection(filepath.Join(dir, name))
		errs.Add(connErrs)
		if conn == nil {
			continue
		}
		if other, dup := seen[conn.Name]; dup {
			errs.Add(conn.Errorf("name", "connection name %q%s is also used by %s", conn.Name, nameOrigin(conn), nameAt(other)))
			continue
		}
		seen[conn.Name] = conn
		c.Connections = append(c.Connections, conn)
	}
	sort.Slice(c.Connections, func(i, j int) bool { return c.Connections[i].Name < c.Connections[j].Name })
	var defaults []*Connection
	for _, conn := range c.Connections {
		if conn.EnrolDefault {
			defaults = append(defaults, conn)
		}
	}
	if len(defaults) > 1 {
		errs.Add(defaults[1].Errorf("enrol_default", "only one LMS connection may take the codes no connection lists; %s does too", defaults[0].File))
	}
	return errs
}

// validName is what a target's or a connection's name may be: it appears
// in log lines, metrics labels, the dashboard and file names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// nameMistake says what is wrong with a target's or connection's name, or "".
func nameMistake(name string) string {
	if validName.MatchString(name) {
		return ""
	}
	return "use up to 64 letters, digits, dots, dashes or underscores (A-Z, a-z, 0-9, . - _), starting with a letter or digit"
}

// nameOrigin says where a connection's name comes from when it is not set.
func nameOrigin(conn *Connection) string {
	if keyLine(conn.root, "name") == 0 {
		return " (the file's name: name is not set)"
	}
	return ""
}

// nameAt locates a connection's name: the line of its name key, else the file.
func nameAt(conn *Connection) string {
	if line := keyLine(conn.root, "name"); line > 0 {
		return fmt.Sprintf("%s:%d", conn.File, line)
	}
	return conn.File + " (its file's name)"
}

// loadConnection reads one LMS file and reports every mistake in it. The
// connection is nil only when the file cannot be read or parsed.
func (c *Config) loadConnection(file string) (*Connection, Errors) {
	root, err := readYAML(file)
	if err != nil {
		var errs Errors
		errs.Add(err)
		return nil, errs
	}
	conn := &Connection{Schedule: "@every 1m", File: file, root: root}
	var errs Errors
	errs.Add(DecodeStrict(file, root, conn))
	fail := func(key, format string, args ...any) { errs.Add(conn.Errorf(key, format, args...)) }
	if conn.Name == "" {
		conn.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	if msg := nameMistake(conn.Name); msg != "" {
		fail("name", "%q%s: %s", conn.Name, nameOrigin(conn), msg)
	}
	if conn.Type == "" {
		fail("type", "required: the adapter kind, e.g. csvdrop")
	}
	if conn.Target == "" && len(c.Targets) == 1 {
		conn.Target = c.TargetNames()[0]
	}
	switch _, ok := c.Targets[conn.Target]; {
	case len(c.Targets) == 0: // reported in the main file
	case conn.Target == "":
		fail("target", "required when cvbridge.yaml has more than one target (%s)", strings.Join(c.TargetNames(), ", "))
	case !ok:
		fail("target", "unknown target %q (targets in %s: %s)", conn.Target, c.File, strings.Join(c.TargetNames(), ", "))
	}
	if conn.Cron, err = scheduleParser.Parse(conn.Schedule); err != nil {
		fail("schedule", "%q: %v", conn.Schedule, err)
	}
	for _, p := range conn.EnrolCodes {
		if _, err := path.Match(p, ""); err != nil {
			fail("enrol_codes", "%q is not a valid pattern: %v", p, err)
		}
	}
	return conn, errs
}

func readYAML(path string) (*yaml.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(path, err)
	}
	if root.Kind == 0 {
		return nil, &Error{File: path, Msg: "the file is empty"}
	}
	for {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return &root, nil
		case err != nil:
			return nil, syntaxError(path, err)
		}
		if len(next.Content) > 0 && next.Content[0].ShortTag() != "!!null" {
			return nil, &Error{File: path, Line: next.Line, Msg: "a second YAML document (after ---) is not read: keep one document per file (one LMS connection per file in the LMS directory)"}
		}
		// An empty document, such as after a trailing ---, holds nothing to lose.
	}
}

// syntaxError locates yaml's "yaml: line N: …" parse errors. yaml.v3
// leaves the line out of a parser's or scanner's error on the first line,
// and out of its reader's errors (bad UTF-8, control characters), which
// may be anywhere: only the former are put on line 1.
func syntaxError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		_, msg, _ = strings.Cut(msg, ": ")
	} else if strings.Contains(msg, "UTF-8") || strings.Contains(msg, "UTF-16") || strings.Contains(msg, "control characters") ||
		strings.Contains(msg, "Unicode") {
		line = 0
	}
	switch {
	case strings.Contains(msg, "tab character"):
		msg += " (YAML is indented with spaces only)"
	case strings.Contains(msg, "cannot start any token"):
		msg += " (a tab? YAML is indented with spaces only; a value starting with @ or ` must be quoted)"
	}
	return &Error{File: path, Line: line, Msg: msg}
}

// valueAt returns the value of a top-level key of a YAML document, or nil.
func valueAt(root *yaml.Node, key string) *yaml.Node {
	node := root
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	if node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i+1]
		}
	}
	return nil
}

// keyLine finds the line of a dotted key path in a YAML document, or the
// nearest parent it can find; 0 when there is none.
func keyLine(root *yaml.Node, path ...string) int {
	node := root
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	line := 0
	for _, key := range path {
		index := -1 // key[i]: the i-th item of key's list
		if name, rest, ok := strings.Cut(key, "["); ok {
			if n, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil {
				key, index = name, n
			}
		}
		if key == "" || node.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				line = node.Content[i].Line
				node = node.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			break
		}
		if index >= 0 {
			if node.Kind != yaml.SequenceNode || index >= len(node.Content) {
				break
			}
			node = node.Content[index]
			line = node.Line
		}
	}
	return line
}
