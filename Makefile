# Gatehouse: the front door. CI runs these same targets.
GO      ?= go
BIN     ?= bin/gatehouse
ADDR    ?= 127.0.0.1:8080
DATA    ?= ./data

.PHONY: all build run test test-postgres test-short fuzz fuzz-short bench bench-go generate check-generated lint fmt clean

all: build

generate:
	$(GO) tool templ generate

build: generate
	$(GO) build -o $(BIN) ./cmd/gatehouse

## run: Gatehouse on embedded SQLite in ./data, dev mode, demo workspace.
## The base URL is on localhost (not 127.0.0.1): passkeys need a host name.
BASE_URL ?= http://localhost:$(lastword $(subst :, ,$(ADDR)))
run: build
	GATEHOUSE_DEV=1 GATEHOUSE_DATA=$(DATA) GATEHOUSE_BASE_URL=$(BASE_URL) ./$(BIN) serve --addr $(ADDR) --demo

## test: every test, browser tests included (they need /usr/bin/chromium),
## each fuzz target's seed corpus among them, then a short fuzz of each target.
test:
	$(GO) test -race -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory fuzz-short

## test-postgres: the same suite on PostgreSQL: a throwaway cluster
## (initdb into a temporary directory, a free loopback port, removed after;
## Debian's postgresql package) unless GATEHOUSE_TEST_DATABASE_URL names a
## server to use, where each test gets a database of its own. Without -race:
## the Go code is the same on both engines, and make test races it.
test-postgres:
	$(GO) run ./cmd/pgtemp -- $(GO) test -count=1 -timeout 20m ./...

## fuzz: every fuzz target (found by scripts/fuzz.sh), one after the other,
## FUZZTIME each with one worker: make fuzz FUZZTIME=30s. docs/FUZZING.md.
FUZZTIME ?= 10m
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## fuzz-short: every fuzz target for FUZZTIME_SHORT (2s) from its seeds
## alone (a fresh corpus cache), as part of make test.
FUZZTIME_SHORT ?= 2s
fuzz-short:
	GO=$(GO) FUZZTIME=$(FUZZTIME_SHORT) FUZZ_CACHEDIR=fresh ./scripts/fuzz.sh

## bench: one table (scripts/bench.sh, docs/BENCHMARKS.md): the password, TOTP,
## recovery-code and passkey steps at 1, 4, 16 and 64 clients against a real
## server on SQLite and on PostgreSQL (cmd/pgtemp), the admin pages and the
## reminder scan at 100,000 members, then the overload checks of
## scripts/loadtest.sh; about 15 minutes. Knobs: BENCH_ENGINES, BENCH_STEPS,
## BENCH_CLIENTS, BENCH_SECONDS… (see the script).
bench: build
	BIN=$(BIN) ./scripts/bench.sh

## bench-go: every Go benchmark of every package, once.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

## check-generated: fail if generated templ code is stale.
check-generated:
	$(GO) tool templ generate
	git diff --exit-code -- '*_templ.go'

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '_templ.go$$')
	$(GO) tool templ fmt views

clean:
	rm -rf bin
