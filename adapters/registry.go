// Package adapters holds the registry of LMS adapter kinds. Each kind lives
// in its own folder below this one and registers itself from an init
// function (Register); cmd/cvbridge imports each folder once, blank. Adding
// an LMS kind is one new folder plus one import, nothing else edited: see
// README.md in this folder for a walkthrough and package example for a
// minimal adapter.
//
// A kind declares its settings type; the registry (Build) owns decoding an
// LMS file's settings node into it strictly, with file, line and key of
// every unknown key and wrongly typed value, then lets the settings
// validate themselves (collecting every mistake) and builds the source. An
// adapter therefore imports only the contract (bridge/source and the types
// of bridge/result), this package and the kit (adapters/kit), never the
// core's configuration; a test keeps it so.
//
// The runtime contract a built source implements (Source, optionally
// Watcher, Checker and Enroller) is in bridge/source; what it can do is
// declared by its settings (source.Capabilities) and checked at start.
package adapters

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/source"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

// Connection is what an adapter gets to validate its settings and build a
// source for one LMS file.
type Connection struct {
	// Name is the connection's name from its LMS file.
	Name string
	// File is the LMS file's path, for messages.
	File string
	// BaseDir is the directory of cvbridge.yaml: relative paths in settings
	// are resolved against it (kit.Resolve), as they are in cvbridge.yaml.
	BaseDir string
	// Location is the provider's time zone, for dates without a zone.
	Location *time.Location
	// Logger is tagged with the connection's name.
	Logger *slog.Logger
}

// Settings is an adapter kind's settings: a pointer to a struct whose yaml
// tags name the keys of the LMS file's settings mapping.
type Settings interface {
	// Validate checks the decoded settings, derives what building needs,
	// and records every mistake in p by its key. It must not touch the LMS.
	Validate(c Connection, p *kit.Problems)
	// Capabilities declares what a source built from these (valid)
	// settings can do beyond Poll.
	Capabilities() source.Capabilities
}

// kind is a registered adapter kind.
type kind struct {
	settings func() Settings
	build    func(Connection, Settings) (source.Source, error)
}

var (
	mu    sync.RWMutex
	kinds = map[string]kind{}
)

// Register makes an adapter kind available under name. defaults returns a
// fresh settings value holding the kind's defaults, which an LMS file's
// settings are decoded over; build makes the source from settings that
// validated. build reads secrets and the like but must not start
// goroutines or touch the LMS: that starts with Poll, Watch or Check. A
// mistake build finds in the settings is a *kit.Problem naming its key.
// Sources that hold resources implement io.Closer.
//
// Register panics on a duplicate name, as that is a programming error found
// at start-up.
func Register[S Settings](name string, defaults func() S, build func(c Connection, s S) (source.Source, error)) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := kinds[name]; dup {
		panic(fmt.Sprintf("adapters: kind %q registered twice", name))
	}
	kinds[name] = kind{
		settings: func() Settings { return defaults() },
		build:    func(c Connection, s Settings) (source.Source, error) { return build(c, s.(S)) },
	}
}

// Known reports whether an adapter kind is registered under name.
func Known(name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	_, ok := kinds[name]
	return ok
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownKind is returned by Build for a kind nobody registered.
var ErrUnknownKind = errors.New("unknown adapter type")

// Decode decodes settings (the LMS file's settings node, nil when absent)
// over the kind's defaults and validates them. Mistakes come back as
// strictyaml.Errors naming c.File, the line and the key within the
// settings mapping (folder, columns.person), every one of them: decoding
// and validation go on past the first. A key the decoder refused (a value
// of the wrong type) is not also reported by the validation.
func Decode(name string, c Connection, settings *yaml.Node) (Settings, error) {
	_, s, err := decode(name, c, settings)
	return s, err
}

// decode is Decode, also returning the kind it looked up.
func decode(name string, c Connection, settings *yaml.Node) (kind, Settings, error) {
	k, err := lookup(name)
	if err != nil {
		return kind{}, nil, err
	}
	s := k.settings()
	var errs strictyaml.Errors
	errs.Add(strictyaml.Decode(c.File, settings, s))
	refused := make(map[string]bool, len(errs))
	for _, e := range errs {
		refused[e.Key] = true
	}
	var problems kit.Problems
	s.Validate(c, &problems)
	for _, p := range problems {
		if !refused[p.Key] {
			errs = append(errs, locate(c.File, settings, p))
		}
	}
	if len(errs) > 0 {
		return kind{}, nil, errs.Sorted()
	}
	return k, s, nil
}

// Build decodes and validates settings as Decode does and builds the
// source, which it returns with the capabilities its settings declare.
func Build(name string, c Connection, settings *yaml.Node) (source.Built, error) {
	k, s, err := decode(name, c, settings)
	if err != nil {
		return source.Built{}, err
	}
	src, err := k.build(c, s)
	if err != nil {
		return source.Built{}, locateAll(c.File, settings, err)
	}
	caps := s.Capabilities()
	if err := caps.Verify(src); err != nil {
		if c, ok := src.(io.Closer); ok {
			_ = c.Close() // a programming error is reported; the handle is of no use
		}
		return source.Built{}, fmt.Errorf("adapter %s: %w", name, err)
	}
	return source.Built{Source: src, Caps: caps}, nil
}

// lookup returns the kind registered under name.
func lookup(name string) (kind, error) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[name]
	if !ok {
		return kind{}, fmt.Errorf("%w %q", ErrUnknownKind, name)
	}
	return k, nil
}

// locate names the file and line of a settings mistake.
func locate(file string, node *yaml.Node, p *kit.Problem) *strictyaml.Error {
	return &strictyaml.Error{File: file, Line: strictyaml.KeyLine(node, p.Key), Key: p.Key, Msg: p.Msg}
}

// locateAll locates the kit.Problems in err; other errors pass unchanged.
func locateAll(file string, node *yaml.Node, err error) error {
	var many kit.Problems
	var one *kit.Problem
	switch {
	case errors.As(err, &many):
		var errs strictyaml.Errors
		for _, p := range many {
			errs.Add(locate(file, node, p))
		}
		return errs.Sorted()
	case errors.As(err, &one):
		return locate(file, node, one)
	}
	return err
}
