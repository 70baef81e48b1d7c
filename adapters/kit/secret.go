package kit

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// TrimSecret is the one trimming rule for secrets (passwords, tokens,
// DSNs, signing keys): a single trailing line ending, "\n" or "\r\n", is
// removed, as `echo secret > file` and editors on either system add one.
// Nothing else is: a space or a second line ending is part of the secret,
// so the bridge and the other end of a shared secret never disagree about
// it. Environment variables are read by the same rule.
func TrimSecret(s string) string {
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		return t
	}
	t, _ := strings.CutSuffix(s, "\n")
	return t
}

// ReadOptionalSecret is ReadSecret for a secret that may be left out: ""
// when neither path nor env is set, and an error when both are.
func ReadOptionalSecret(baseDir, path, env string) (string, error) {
	switch {
	case path != "" && env != "":
		return "", errors.New("set either the file or the environment variable, not both")
	case path == "" && env == "":
		return "", nil
	}
	return ReadSecret(baseDir, path, env)
}

// ReadSecret reads a secret from the file at path (relative to baseDir) or
// from the environment variable env, whichever is set (the caller checks
// that exactly one is), trimmed by TrimSecret. An unreadable file, an
// unset variable and an empty secret are errors; the secret itself never
// appears in one.
func ReadSecret(baseDir, path, env string) (string, error) {
	if env != "" {
		if err := CheckEnvName(env); err != nil {
			return "", err
		}
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		if v = TrimSecret(v); v == "" {
			return "", fmt.Errorf("environment variable %s is empty", env)
		}
		return v, nil
	}
	p := Resolve(baseDir, path)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", p, err)
	}
	warnLoosePermissions(p)
	v := TrimSecret(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", p)
	}
	return v, nil
}

// envName is what an environment variable's name looks like.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckEnvName refuses a *_env setting that is no environment variable's
// name, such as the secret itself written there by mistake; the error does
// not repeat it.
func CheckEnvName(name string) error {
	if !envName.MatchString(name) {
		return errors.New("is not the name of an environment variable (letters, digits and _, not starting with a digit): " +
			"name the variable that holds the secret, not the secret itself (the value is not repeated here)")
	}
	return nil
}

// warnLoosePermissions logs a warning when a secret file may be read by
// every user of the machine, or changed by others than its owner. The
// packaged layout is root:cvbridge 0640.
func warnLoosePermissions(path string) {
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o027 == 0 {
		return
	}
	slog.Warn("a secret file can be read by every user of this machine, or written by others than its owner: chmod 0640 (owner root, group cvbridge) or 0600",
		"file", path, "mode", fmt.Sprintf("%04o", info.Mode().Perm()))
}

// ShowURL returns a URL as it may be shown in an error or a log line: the
// values of its query (Coachview's plugin key, a Moodle token) are replaced
// by "***", a password by url.URL.Redacted's "xxxxx", and the fragment is
// left out; a URL that does not parse is not shown at all.
func ShowURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that cannot be parsed; not shown, as it may hold a secret)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"***"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.Redacted()
}
