# One task runner for people and CI alike: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the packaging metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install the project with its dev dependencies

GO_MODULE := testbed/go

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check), mypy --strict, hadolint, gofmt and go vet
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	@# Every Go module with sources (testbed/argo only pins modules: nothing to check there).
	@for module in $(GO_MODULE) testbed/sensorcheck; do \
	  unformatted="$$(cd $$module && gofmt -l .)"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt: not formatted in $$module: $$unformatted" >&2; exit 1; fi; \
	done
	cd $(GO_MODULE) && go vet ./nodeagent/ ./cmd/...
	cd testbed/sensorcheck && go vet ./...

.PHONY: fmt
fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The real control plane's binary (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# node agent), built from the Go modules testbed/go pins into a cache outside the tree; a no-op
# when cached.
.PHONY: testbed
testbed: $(STAMP) ## build (or find cached) the real control plane from pinned Go modules
	$(BIN)/tenantctl cluster build

.PHONY: cluster
cluster: $(STAMP) ## the real control plane with the node agent (prints its kubeconfig)
	$(BIN)/tenantctl cluster up

.PHONY: test
test: lint testbed ## lint, type check and the whole test suite (unit, integration, e2e, real)
	cd $(GO_MODULE) && go test ./nodeagent/
	@# pytest exits 5 when it collected nothing: a suite that tested nothing is a failure.
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

.PHONY: test-unit
test-unit: $(STAMP) ## only the fast unit tier
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

.PHONY: demo
demo: $(STAMP) ## the main job: a guided tour of the product on a local sandbox
	$(BIN)/tenantctl demo

# The tour on the real control plane and the real Argo controller (the first run builds them).
DEMO_ARGO_ARGS ?= --serve
.PHONY: demo-argo
demo-argo: $(STAMP) ## the guided tour on the real control plane and Argo controller
	$(BIN)/tenantctl cluster demo $(DEMO_ARGO_ARGS)

.PHONY: sandbox
sandbox: $(STAMP) ## a local Kubernetes API server for kubectl (prints its kubeconfig)
	$(BIN)/tenantctl sandbox up

.PHONY: render
render: $(STAMP) ## regenerate the committed Argo and install manifests
	$(BIN)/tenantctl render --out workflows/rendered

# The full soak under injected faults; size it with SOAK_ARGS (docs/reliability.md).
SOAK_ARGS ?= --requests 500 --tenants 50 --faults-per-kind 200 --seed 1 --report soak-report.json

.PHONY: chaos
chaos: $(STAMP) ## the full soak under faults, invariants checked (SOAK_ARGS to size it)
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

.PHONY: bench
bench: $(STAMP) ## run the benchmarks in bench/ and write bench/results/
	$(BIN)/python -m bench

.PHONY: clean
clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
