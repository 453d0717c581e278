# kmipd — build, run and test.
GO        ?= go
PYTHON    ?= /usr/bin/python3
BIN       ?= bin/kmipd
DEV_DIR   ?= ./kmipd-dev
ADDR      ?= 127.0.0.1:5696
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
TESTCASES ?= ../shared/kmip-testcases
FUZZTIME  ?= 60s

.PHONY: all build run test test-go test-interop test-conformance vet fmt fuzz bench barbican-e2e clean test-cluster-long bench-cluster bench-audit

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/kmipd

# The README's first command: kmipd on its embedded default.
run: build
	$(BIN) dev -dir $(DEV_DIR) -addr $(ADDR)

# The README's second command: every test.
test: vet test-go test-conformance test-interop

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd tests/ovhclient && $(GO) vet ./...

# tests/ovhclient is its own module (ovh/kmip-go stays out of kmipd's go.mod),
# so ./... does not reach it.
test-go:
	$(GO) test -race -count=1 -timeout 30m ./...
	cd tests/ovhclient && $(GO) test -race -count=1 -timeout 5m ./...

# The OASIS replayer: the project's own cases and every case of the shared
# KMIP 1.0, 1.1, 1.2 and 1.4 folders, each set on its own kmipd dev server, all
# at once (about four minutes); red unless exactly the cases in
# conformance/expected-failures.txt fail. conformance_test.sh first checks that
# verdict on a two-case corpus.
test-conformance: build
	./scripts/conformance_test.sh $(BIN)
	./scripts/conformance.sh $(BIN) $(TESTCASES)

test-interop: build
	KMIPD_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/interop

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# kmipd and PyKMIP's server side by side (issue 6); BENCH_ROUNDS, BENCH_DURATION and BENCH_WARMUP: see scripts/bench.sh.
bench: build
	./scripts/bench.sh $(BIN)

# What the audit log costs (issue 18): two kmipd dev servers, -audit on and
# off, the same Get and Create loads against each, alternating which goes
# first; medians, the on/off ratio and every round's ratio. AUDIT_ROUNDS
# (5), AUDIT_DURATION (10s), AUDIT_WARMUP (2s): see scripts/audit-cost.sh.
bench-audit: build
	./scripts/audit-cost.sh $(BIN)

# Barbican 15's real API (gunicorn, MariaDB) in front of kmipd and of its own
# p11_crypto, on one HSM capped at 8 sessions (issue 19): a table of requests
# ok and failed, ops/s, HSM peak sessions, API afterwards. E2E_FLAGS: -p11 or
# -kmip for half the rows, -rows, -clients, -duration; see tests/barbican_e2e/run.py.
# (make test runs a bounded version: tests/interop/test_barbican_e2e.py.)
E2E_FLAGS ?=
barbican-e2e: build
	$(PYTHON) tests/barbican_e2e/run.py -kmipd $(abspath $(BIN)) -strict $(E2E_FLAGS)

# The cluster's process-level load test for minutes instead of make test's
# 15 s (issue 17): kmipd dev -cluster 3 over the capped module (HSM cap and
# cluster_max_sessions 6), 200 clients; 0 failures, HSM peak <= 6, 0 refused
# opens. CLUSTER_LOAD: how long the clients run.
CLUSTER_LOAD ?= 5m
test-cluster-long:
	$(GO) test -race -count=1 -timeout 60m -run 'TestDevClusterUnderLoad' -v ./tests/cluster -args -cluster.load-duration=$(CLUSTER_LOAD)

# kmipd as a cluster (3 replicas on PostgreSQL) against one kmipd on Badger,
# in the same run, and where PostgreSQL's time goes (issue 17):
# bench/cluster-results.md; BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP as for make bench.
bench-cluster: build
	$(PYTHON) scripts/bench-cluster.py $(BIN)
