# Each target is one or two commands; the logic lives in scripts/.
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install dev stop health clean protos protos-check lint fmt test test-unit \
        test-integration test-e2e bench helm chart chart-k8s

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install:  ## Python venv from the lock, buf, Debian packages, Kafka jars, MinIO, SDK 3.x venv
	scripts/install.sh

dev: install  ## the whole stack on loopback, with the default project's keys printed
	scripts/stack.sh up

stop:  ## stop the services and engines this checkout started
	scripts/stack.sh down

health:  ## each service's health; non-zero unless all five are SERVING
	scripts/stack.sh health

clean: stop  ## stop everything and delete local data (.dev)
	rm -rf .dev

protos:  ## regenerate libs/common/gen from protos/
	$(PY) scripts/gen_protos.py

protos-check: protos  ## generated code in sync, buf lint
	git diff --exit-code -- libs/common/gen
	cd protos && ../scripts/node/node_modules/.bin/buf lint

lint:  ## ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

fmt:  ## ruff format and autofix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: install  ## every tier against real engines, which it starts itself
	scripts/engines.sh start
	$(MAKE) protos-check lint
	$(PY) -m pytest

test-unit:  ## unit tests only (no engines)
	$(PY) -m pytest tests/unit

test-integration:  ## integration tests (engines must be up: scripts/engines.sh start)
	$(PY) -m pytest tests/integration

test-e2e:  ## end-to-end tests with the official SDKs
	$(PY) -m pytest tests/e2e

bench: install  ## benchmarks, printed as a table
	scripts/engines.sh start
	$(PY) -m scripts.bench

helm:  ## build the pinned helm into .dev/bin (go install, once)
	scripts/deploy/helm.sh >/dev/null

chart: helm  ## Helm chart: lint, render, schemas, structure, then chart-k8s's cluster check
	$(PY) -m pytest tests/deploy

chart-k8s: helm  ## the chart on a local Kubernetes control plane (kwok node): install..uninstall
	$(PY) -m pytest tests/deploy/test_kubernetes.py
