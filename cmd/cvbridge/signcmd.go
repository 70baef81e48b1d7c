package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// cmdSign prints the X-WebHook-Signature of a file, with a target's secret
// or a secret file, so a provider can test Coachview with Postman or curl.
func cmdSign(_ context.Context, args []string, out io.Writer) error {
	fs := newFlags("sign")
	cfgPath := configFlag(fs)
	target := fs.String("target", "", "use this configured target's secret and hash")
	secretFile := fs.String("secret-file", "", "use the secret in this file instead of a target's")
	hash := fs.String("hash", "sha512", "with --secret-file: sha512, sha256 or sha1")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"sign: give one file to sign, or - for standard input"}
	}
	var secret []byte
	var alg sign.Algorithm
	switch {
	case *secretFile != "":
		s, err := kit.ReadSecret("", *secretFile, "")
		if err != nil {
			return err
		}
		secret = []byte(s)
		if alg, err = sign.ParseAlgorithm(*hash); err != nil {
			return usageError{err.Error()}
		}
	case *target != "":
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		t, ok := cfg.Targets[*target]
		if !ok {
			return usageError{fmt.Sprintf("unknown target %q (configured: %v)", *target, cfg.TargetNames())}
		}
		secret, alg = t.Secret, t.Algorithm
	default:
		return usageError{"sign: give --target NAME or --secret-file FILE"}
	}
	body, err := readInput(fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s: %s\n", sign.Header, sign.Sign(alg, secret, body))
	return err
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}
