# Capstan: `make run` starts a local server with an embedded etcd; `make test` runs the tests.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin
DATA_DIR ?= .capstan
# Extra flags for `make run`, e.g. RUN_FLAGS=--secure-port=9443
RUN_FLAGS ?=
# Arguments for go test, e.g. TEST_FLAGS='-run TestConfigSetCRUD -v'
TEST_FLAGS ?=

.PHONY: all build run test test-e2e test-reliability fuzz bench bench-quick tools generate verify vet fmt-check clean

all: build

build:
	$(GO) build -o $(BIN)/capstan-apiserver ./cmd/apiserver
	$(GO) build -o $(BIN)/capstan-controller-manager ./cmd/controller-manager
	$(GO) build -o $(BIN)/kubectl-capstan ./cmd/kubectl-capstan

run: build
	$(BIN)/capstan-apiserver --mode=local --data-dir=$(DATA_DIR) $(RUN_FLAGS)

# Unit, storage, in-process server and kubectl tests. The suites that need a
# real kube-apiserver (test-e2e) or kill processes (test-reliability) have
# their own targets.
UNIT_PKGS = $$($(GO) list ./... | grep -v -e '/test/e2e$$' -e '/test/artifacts$$' -e '/test/reliability')

test:
	$(GO) test -count=1 -timeout 30m $(TEST_FLAGS) $(UNIT_PKGS)
	cd test/monitoring && $(GO) test -count=1 $(TEST_FLAGS) ./...

# Builds a real kube-apiserver and kube-controller-manager v1.36.3 and etcd into
# _output/bin (minutes the first time).
tools:
	hack/build-tools.sh

# End-to-end tests through a real kube-apiserver with the aggregation layer,
# and the deployable manifests checked with server-side dry-run.
test-e2e: build tools
	$(GO) test -count=1 -timeout 20m $(TEST_FLAGS) ./test/e2e/... ./test/artifacts/...

# Storage semantics, authentication, encryption at rest, and faults under load
# (etcd killed, paused, blackholed; Capstan killed and stopped; an etcd leader
# killed under two replicas; two replicas upgraded one at a time from the
# previous commit's build) checked for linearizability: etcd and Capstan run
# as child processes behind a fault-injecting proxy. About 7 minutes.
test-reliability: build tools
	$(GO) test -count=1 -timeout 20m $(TEST_FLAGS) ./test/reliability/...
	$(MAKE) fuzz

# Each fuzz target of the API's decoding and validation, briefly; the committed
# seed corpus also runs in every `make test`.
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own deadline as a failure when a loaded machine starves the
# workers at the end (golang/go#75804, fixed in Go 1.27); a count has no
# deadline to race. 20000 executions take 3 to 7 s per target here.
FUZZTIME ?= 20000x
FUZZ_TARGETS = FuzzDecodeConfigSet FuzzDecodeConfigPolicy FuzzDecodeConfigRevision FuzzValidateEntries
fuzz:
	@for f in $(FUZZ_TARGETS); do \
		$(GO) test ./pkg/apis/config/ -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# Capstan side by side with raw etcd and a CRD on kube-apiserver, in one run:
# bench/results/latest.json and the tables in docs/benchmarks.md (about 55 min on
# 2 cores).
bench: build tools
	$(GO) run ./test/bench

# A small version of the same run, as a smoke test; it writes nothing to the repo.
bench-quick: build tools
	$(GO) run ./test/bench -quick -out $${TMPDIR:-/tmp}/capstan-bench-quick.json -md '' -pprof-dir $${TMPDIR:-/tmp}/capstan-bench-quick-pprof

generate:
	hack/update-codegen.sh

verify: fmt-check vet
	hack/verify-codegen.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^pkg/generated/' | grep -v '/zz_generated\.')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN) _output
