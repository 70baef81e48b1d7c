# cvbridge — common tasks. `make help` lists them.
GO      ?= go
BIN     := bin/cvbridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help build run test bench lint fuzz clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/cvbridge
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cvbridge

run: build ## quick start: simulator + daemon on the example config under ./var (Ctrl-C stops)
	./examples/quickstart/run.sh $(BIN)

test: ## vet and run every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench: ## run the benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

fuzz: ## run each fuzz target for FUZZTIME (30s)
	./scripts/fuzz.sh $${FUZZTIME:-30s}

clean: ## remove build output and the quick start's ./var
	rm -rf bin var
