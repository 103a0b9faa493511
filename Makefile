# Loom — kubebuilder-style entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The model server's environment (MLServer cannot share one with Feast); reinstalled when its lock changes.
VENV_SERVE ?= .venv-serve
SERVE_STAMP = $(VENV_SERVE)/.installed-$(shell sha256sum requirements/serve.txt | cut -c1-12)
# kfp and what the pipeline's components import (kfp would downgrade .venv's protobuf); reinstalled when its lock changes.
VENV_PIPELINES ?= .venv-pipelines
PIPELINES_STAMP = $(VENV_PIPELINES)/.installed-$(shell sha256sum requirements/pipelines.txt | cut -c1-12)
# The stamp changes whenever the dependency declarations do, so `make` reinstalls exactly then.
STAMP = $(VENV)/.installed-$(shell echo $(EXTRAS) | cat setup.cfg pyproject.toml - | sha256sum | cut -c1-12)
DEV_DIR ?= $(or $(LOOM_DEV_DIR),$(HOME)/.local/state/loom/dev)
PYTEST_ARGS ?=
# What the tests and the demo exercise for real; `serve` joins with its issue.
EXTRAS ?= dev,local,lake,features,demo,train
export PIP_DISABLE_PIP_VERSION_CHECK := 1

##@ General

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

venv: $(STAMP) ## Create .venv with the operator, the local control plane tools and test dependencies.

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]' --config-settings editable_mode=compat
	rm -f $(VENV)/.installed-*
	touch $@

venv-serve: $(SERVE_STAMP) ## Create .venv-serve with MLServer and the recommender runtime's dependencies (requirements/serve.txt).

# locked_venv DIR REQUIREMENTS: a virtualenv of its own installed from a fully pinned requirements file.
define locked_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q -r $(2)
	rm -f $(1)/.installed-*
	touch $@
endef

$(SERVE_STAMP): requirements/serve.txt
	$(call locked_venv,$(VENV_SERVE),$<)

venv-pipelines: $(PIPELINES_STAMP) ## Create .venv-pipelines with kfp and the pipeline components' dependencies (requirements/pipelines.txt).

$(PIPELINES_STAMP): requirements/pipelines.txt
	$(call locked_venv,$(VENV_PIPELINES),$<)

pipelines: venv-pipelines ## Compile pipelines/lake_to_serving.py to its IR YAML, pipelines/lake_to_serving.yaml.
	$(VENV_PIPELINES)/bin/python pipelines/lake_to_serving.py compile pipelines/lake_to_serving.yaml

manifests: venv ## Generate crds/*.yaml from the API models in operator/loom/api.
	$(PY) -m loom.cli manifests

HELM_BIN = $(PY) -c 'from loom.devcluster.binaries import ensure_helm; print(ensure_helm())'

helm: venv ## Build the helm CLI from the Go module proxy (cached in ~/.cache/loom/helm-<version>).
	$(HELM_BIN)

lint-chart: venv ## helm lint the chart.
	"$$($(HELM_BIN))" lint --strict charts/loom

controlplane: venv ## Build etcd, kube-apiserver, kube-controller-manager, kubectl (cached in ~/.cache/loom).
	$(PY) -m loom.devcluster build

cluster: controlplane ## Start the local control plane and install the CRDs; prints its env.
	$(PY) -m loom.cli dev up --state-dir $(DEV_DIR) > /dev/null
	eval "$$($(PY) -m loom.cli dev env --state-dir $(DEV_DIR))"; \
	  kubectl apply --server-side --force-conflicts -f crds/ && \
	  kubectl wait --for=condition=Established --timeout=60s -f crds/
	$(PY) -m loom.cli dev env --state-dir $(DEV_DIR)

cluster-down: venv ## Stop the local control plane (its etcd data is kept; PURGE=1 deletes it).
	$(PY) -m loom.cli dev down --state-dir $(DEV_DIR) $(if $(PURGE),--purge,)

run: venv venv-serve ## Run the operator against the current kubeconfig with the local executor (it serves from .venv-serve).
	$(PY) -m loom.cli run --executor local --verbose

##@ Testing

system-deps: ## Debian packages the tests and the demo run (PostgreSQL, Redis, Prometheus, a JRE, curl), if missing.
	hack/install-system-deps.sh

test: venv venv-serve venv-pipelines controlplane helm system-deps ## Unit, integration and e2e tests (integration and e2e start their own control planes).
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: venv ## Unit tests only (no control plane).
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

FUZZ_PER_KIND ?= 1000
FUZZ_SEED ?= 0
fuzz: venv controlplane ## Fuzz the four kinds against a control plane and the operator (FUZZ_PER_KIND, FUZZ_SEED); fails on any failure class.
	$(PY) -m tests.fuzz.run --per-kind $(FUZZ_PER_KIND) --seed $(FUZZ_SEED)

lint: venv ## ruff, import-linter (the layers of docs/architecture.md) and mypy on operator/loom.
	$(VENV)/bin/ruff check .
	cd operator && ../$(VENV)/bin/lint-imports --no-cache ../.importlinter
	$(VENV)/bin/mypy

bench: venv venv-serve controlplane system-deps ## Benchmarks, each ours vs its baseline side by side (not tests).
	$(PY) bench/ingest.py
	$(PY) bench/datalake_reconcile.py
	$(PY) bench/feature_online.py
	$(PY) bench/materialize.py
	$(PY) bench/operator_memory.py --per-kind 250
	$(PY) bench/model_quality.py
	$(PY) bench/training_throughput.py
	$(PY) bench/trainingjob_scale.py
	$(PY) bench/router_overhead.py
	$(PY) bench/recommend_e2e.py

# system-deps first: a machine without Redis fails at once, not after building the control plane.
# The demo starts the control plane and installs the CRDs itself, as `make cluster` does; its model
# servers run in .venv-serve.
demo: system-deps venv-serve controlplane ## The lifecycle on the local control plane, each step checked; it keeps running, data in DEV_DIR.
	DEV_DIR=$(DEV_DIR) PY=$(PY) hack/demo.sh

demo-down: ## Stop what `make demo` started (operator, model servers, Redis, Prometheus, MLflow UI, control plane); PURGE=1 deletes its data.
	DEV_DIR=$(DEV_DIR) PY=$(PY) PURGE=$(PURGE) hack/demo-down.sh

##@ Deployment

install: ## Install the CRDs into the cluster of the current kubeconfig.
	kubectl apply --server-side -f crds/

uninstall: ## Remove the CRDs (and so every Loom object) from the current cluster.
	kubectl delete --ignore-not-found -f crds/

deploy: venv ## Install the operator with Helm into the current cluster.
	"$$($(HELM_BIN))" upgrade --install loom charts/loom --namespace loom-system --create-namespace $(HELM_ARGS)

undeploy: venv ## Uninstall the operator release (CRDs stay, as Helm leaves them).
	"$$($(HELM_BIN))" uninstall loom --namespace loom-system

.PHONY: help bench lint helm lint-chart system-deps venv venv-serve venv-pipelines pipelines manifests controlplane cluster cluster-down run test test-unit fuzz demo demo-down install uninstall deploy undeploy
