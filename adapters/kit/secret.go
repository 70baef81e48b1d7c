package kit

import (
	"errors"
	"fmt"
	"os"
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
	v := TrimSecret(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", p)
	}
	return v, nil
}
