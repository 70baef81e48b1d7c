package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/simulator"
)

// cmdSim serves a local Coachview results endpoint that checks signatures
// and the XSD like Coachview and can be told to fail.
func cmdSim(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("sim")
	listenAddr := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	secretFile := fs.String("secret-file", "", "file holding the shared secret (required)")
	hash := fs.String("hash", "sha512", "signature hash: sha512, sha256 or sha1")
	xsdFile := fs.String("xsd", "", "validate against this XSD instead of the bundled one")
	var script simulator.Flags
	script.Bind(fs)
	quiet := fs.Bool("quiet", false, "do not print a line per request")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *secretFile == "" {
		return usageError{"--secret-file is required"}
	}
	secret, err := kit.ReadSecret("", *secretFile, "")
	if err != nil {
		return err
	}
	alg, err := sign.ParseAlgorithm(*hash)
	if err != nil {
		return usageError{err.Error()}
	}
	var schema *xsdschema.Schema
	if *xsdFile != "" {
		schema, err = xsdschema.Load(*xsdFile)
	} else {
		schema, err = xsdschema.Bundled()
	}
	if err != nil {
		return err
	}
	defer schema.Close()
	opts := simulator.Options{
		Secret:    []byte(secret),
		Algorithm: alg,
		Validate:  schema.Validate,
		// One human-readable line per request on out; the structured log
		// stays quiet unless something goes wrong inside the simulator.
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if !*quiet {
		opts.Out = out
	}
	sim := simulator.New(opts)
	if err := sim.ApplyFlags(script); err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", *listenAddr)
	if err != nil {
		return err
	}
	// Served for IP addresses and localhost only, as the admin listener:
	// a page of a foreign site re-pointed at this address (DNS rebinding)
	// must not read the results and signatures the simulator keeps.
	srv := &http.Server{Handler: listen.NewHostCheck(listen.HostPolicy{}, sim), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	_, _ = fmt.Fprintf(out, "Coachview simulator on http://%s/elearning/result.aspx (stats: /_sim/stats)\n", ln.Addr())
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
