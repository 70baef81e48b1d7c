// Package adapters holds the registry of LMS adapter kinds. Each kind lives in
// its own folder below this one and registers a Factory from an init
// function; cmd/cvbridge imports each folder once, blank. Adding an LMS kind
// is one new folder plus one import, nothing else edited.
//
// The runtime contract a factory's product implements (Source, optionally
// Watcher and Enroller) is in bridge/source.
package adapters

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/bridge/source"
)

// Connection is what a factory gets to build a source for one LMS file.
type Connection struct {
	// Name is the connection's name from its LMS file.
	Name string
	// File is the LMS file's path, for error messages.
	File string
	// BaseDir is the directory of cvbridge.yaml: relative paths in settings
	// are resolved against it, as they are in cvbridge.yaml itself.
	BaseDir string
	// Settings is the adapter's own settings node (may be nil). Decode it with
	// config.DecodeStrict so unknown keys and wrong types name file and line.
	Settings *yaml.Node
	// Location is the provider's time zone, for dates without a zone.
	Location *time.Location
	// Logger is tagged with the connection's name.
	Logger *slog.Logger
}

// Factory builds a source from a connection's settings. It applies defaults,
// validates, and returns an error naming file, line and key on bad settings.
// A factory must not start goroutines or touch the LMS: that starts with Poll
// or Watch. Sources that hold resources implement io.Closer.
type Factory func(c Connection) (source.Source, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes an adapter kind available under name. It panics on a
// duplicate name, as that is a programming error found at start-up.
func Register(kind string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[kind]; dup {
		panic(fmt.Sprintf("adapters: kind %q registered twice", kind))
	}
	factories[kind] = f
}

// Lookup returns the factory registered for kind.
func Lookup(kind string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := factories[kind]
	return f, ok
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	kinds := make([]string, 0, len(factories))
	for k := range factories {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}
