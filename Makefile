# cvbridge — common tasks. `make help` lists them.
GO      ?= go
BIN     := bin/cvbridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help build run test bench lint fuzz deb clean check-deps

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

check-deps:
	@command -v gcc >/dev/null && pkg-config --exists libxml-2.0 || { \
	  echo "cvbridge needs gcc and libxml2's headers: apt-get install gcc pkg-config libxml2-dev"; exit 1; }

build: check-deps ## build bin/cvbridge
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cvbridge

run: build ## quick start: simulator + daemon on the example config under ./var (Ctrl-C stops)
	./examples/quickstart/run.sh $(BIN)

test: check-deps ## vet and run every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench: ## run the benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME (30s) each
	@for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$fn"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

deb: check-deps ## build the Debian package into bin/
	./systemd/deb/build.sh $(VERSION) bin

clean: ## remove build output and the quick start's ./var
	rm -rf bin var
