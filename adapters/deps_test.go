package adapters_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cvbridge/cvbridge/"

// coreForAdapters is all of the core an adapter may depend on: the
// contract, the strict decoder the registry uses, the clock, and the rules
// for database connection strings.
var coreForAdapters = []string{
	module + "bridge/source",
	module + "bridge/result",
	module + "bridge/strictyaml",
	module + "bridge/clock",
	module + "bridge/dsn",
}

// goCmd runs the go command, in this folder, with extra environment.
func goCmd(t *testing.T, env []string, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check the adapters' dependencies: %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAdaptersImportOnlyTheContract keeps the dependencies pointing the
// right way: no adapter (nor the registry or the kit) depends on the core's
// configuration, or on any core package but the contract's.
func TestAdaptersImportOnlyTheContract(t *testing.T) {
	t.Parallel()
	for _, pkg := range strings.Fields(goCmd(t, nil, "list", "-deps", "./...")) {
		if strings.HasPrefix(pkg, module+"bridge/") && !slices.Contains(coreForAdapters, pkg) {
			t.Errorf("an adapter depends on %s; adapters may use only %v and adapters/kit", pkg, coreForAdapters)
		}
	}
}

// TestContractBuildsWithoutCgo: an adapter author needs no C compiler or
// libxml2. The contract, the registry, the kit and every adapter build
// with CGO_ENABLED=0; XSD validation (cgo) lives in bridge/result/xsdschema.
func TestContractBuildsWithoutCgo(t *testing.T) {
	t.Parallel()
	goCmd(t, []string{"CGO_ENABLED=0"}, "build", "./...", "../bridge/source", "../bridge/result", "../bridge/strictyaml")
}
