# cvbridge — common tasks. `make help` lists them.
GO      ?= go
BIN     := bin/cvbridge
VERSION ?= $(shell ./systemd/deb/version.sh 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help build run test bench faults lint fuzz deb clean check-deps

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

check-deps:
	@command -v gcc >/dev/null && pkg-config --exists libxml-2.0 || { \
	  echo "cvbridge needs gcc and libxml2's headers: apt-get install gcc pkg-config libxml2-dev"; exit 1; }

build: check-deps ## build bin/cvbridge
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cvbridge

run: build ## quick start: simulator + daemon on the example config under ./var (Ctrl-C stops)
	./examples/quickstart/run.sh $(BIN)

TEST_FUZZTIME ?= 5s
test: check-deps lint ## lint, every test with the race detector, then every fuzz target for TEST_FUZZTIME (5s)
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

BENCH_N     ?= 100000
BENCH_COUNT ?= 3
DRAIN_COUNT ?= 3
CSV_ROWS    ?= 1000000
PG_CSV_ROWS ?= 300000
CSV_COUNT   ?= 3
SCRAPE_ROWS ?= 1000000
INBOUND_STEP  ?= 10s
INBOUND_COUNT ?= 3
MOODLE_ROWS   ?= 1000000
BENCH_OUT   := bin/bench.txt
BENCH_RUN    = $(GO) test -run '^$$' -timeout 3h
bench: SHELL := /bin/bash
bench: check-deps ## run the benchmarks (drain, render, CSV, inbound, footprint, latency, /metrics scrape) and write BENCHMARKS.md
	@mkdir -p bin && : > $(BENCH_OUT)
	@echo "# load: before: $$(cat /proc/loadavg)" >> $(BENCH_OUT)
	@set -o pipefail; run() { local c; c=$$(printf '%q ' "$$@"); echo "# command: $$c" >> $(BENCH_OUT); echo "$$c"; "$$@" | tee -a $(BENCH_OUT); }; \
	run env CVBRIDGE_BENCH_N=$(BENCH_N) $(BENCH_RUN) -bench Drain -benchtime=1x -count=$(DRAIN_COUNT) ./cmd/cvbridge && \
	run $(BENCH_RUN) -bench Render -benchmem -count=$(BENCH_COUNT) ./cmd/cvbridge && \
	run env CVBRIDGE_BENCH_CSV_ROWS=$(CSV_ROWS) $(BENCH_RUN) -bench 'CSVToQueued$$' -benchtime=1x -count=$(CSV_COUNT) ./cmd/cvbridge && \
	run env CVBRIDGE_BENCH_PG_CSV_ROWS=$(PG_CSV_ROWS) $(BENCH_RUN) -bench CSVToQueuedPostgres -benchtime=1x -count=$(CSV_COUNT) ./cmd/cvbridge && \
	run env CVBRIDGE_BENCH_INBOUND=$(INBOUND_STEP) $(BENCH_RUN) -bench Inbound -benchtime=1x -count=$(INBOUND_COUNT) ./cmd/cvbridge && \
	run env CVBRIDGE_BENCH_MOODLE_ROWS=$(MOODLE_ROWS) $(BENCH_RUN) -bench MoodleHistory -benchtime=1x -count=$(BENCH_COUNT) ./adapters/moodle && \
	run env CVBRIDGE_BENCH_IDLE=30s $(BENCH_RUN) -bench 'IdleFootprint|DropToFirstPOST' -benchtime=1x -count=$(BENCH_COUNT) ./cmd/cvbridge && \
	run env CVBRIDGE_BENCH_SCRAPE_ROWS=$(SCRAPE_ROWS) $(BENCH_RUN) -bench 'Scrape' -benchtime=1x -count=$(BENCH_COUNT) ./bridge/metrics
	@echo "# load: after: $$(cat /proc/loadavg)" >> $(BENCH_OUT)
	$(GO) run ./cmd/cvbload report -in $(BENCH_OUT) -out BENCHMARKS.md

FAULTS_FUZZTIME ?= 2m
faults: check-deps ## fault suite: kill -9 at random moments, outages, 403 storm, database and disk faults (root for chattr/mount), then every fuzz target for FAULTS_FUZZTIME (2m)
	CVBRIDGE_FAULTS=1 $(GO) test -count=1 -v -timeout 1h -run 'Fault|Kill|PostgresRestart|Outage' ./cmd/cvbridge
	$(GO) test -race -count=1 -run 'StoreFailure|Batch' ./bridge/delivery ./bridge/outbox/sqlite ./bridge/outbox/postgres
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FAULTS_FUZZTIME)

# The linters' versions are pinned; `go run` fetches them through the module
# proxy on first use, so a fresh machine needs nothing installed.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
ERRCHECK    ?= github.com/kisielk/errcheck@v1.9.0
lint: ## gofmt, go vet, staticcheck and errcheck (tests included): all must be clean
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(ERRCHECK) ./...

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME (30s) each
	@n=0; for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$fn ($(FUZZTIME))"; n=$$((n+1)); \
	    .ci/fuzz-target $$pkg $$fn $(FUZZTIME) $(GO) || exit 1; \
	  done; \
	done; \
	test $$n -gt 0 || { echo "no fuzz targets found"; exit 1; }; echo "fuzzed $$n targets for $(FUZZTIME) each"

deb: check-deps ## build the Debian package into bin/
	./systemd/deb/build.sh $(VERSION) bin

clean: ## remove build output and the quick start's ./var
	rm -rf bin var
