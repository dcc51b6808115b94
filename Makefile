# Two commands matter: `make synth` and `make test`. Everything else is a helper.
# Each target installs what it needs into the repo (.venv, node_modules) on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
UV        := $(VENV)/bin/uv
CDK       := node_modules/.bin/cdk
PY_STAMP  := $(VENV)/.installed
JS_STAMP  := node_modules/.installed
# checkov pins boto3 and others below what .venv uses: it gets an environment of its own.
CHECKOV_VENV  := .venv-checkov
CHECKOV       := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
TEST_OUT  := .cache/test.out
DOCS_OUT  := docs/api
DIST      := dist
ENV       ?=

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1
# cdk.json runs `python3 app.py`: the venv must come first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup synth test static scans lint typecheck docs docs-check unit unit-cdk unit-runtime cfn-lint checkov package \
	demo bench deploy diff bootstrap clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(PY_STAMP): requirements/dev.lock constructs/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.8
	@# Bytecode compiled once here: aws-cdk-lib's modules are large, and compiling them on
	@# every import (PYTHONDONTWRITEBYTECODE is set below) costs seconds per synth.
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements/dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e ./constructs
	touch $@

$(CHECKOV_STAMP): requirements/checkov.lock | $(PY_STAMP)
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(UV) pip sync --quiet --compile-bytecode --require-hashes --python $(CHECKOV_VENV)/bin/python \
		requirements/checkov.lock
	touch $@

$(JS_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(PY_STAMP) $(JS_STAMP) $(CHECKOV_STAMP) ## install Python and node dependencies into the repo

synth: setup ## synthesize every environment (or ENV=name) into cdk.out/
	rm -rf cdk.out
	@# '**' selects the stacks inside every stage; without it the CLI skips their cdk-nag report.
	$(CDK) synth --quiet $(if $(ENV),-c env=$(ENV)) '**' >/dev/null
	$(PY) tools/synth_summary.py cdk.out

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

docs: $(PY_STAMP) ## API reference of the construct library, from its docstrings, into docs/api/
	$(PY) tools/api_docs.py $(DOCS_OUT)

docs-check: $(PY_STAMP) ## the docs build of the gate: fails on any pdoc warning or broken reference
	$(PY) tools/api_docs.py --strict --quick .cache/docs-api

# Two pytest processes, one per core: the tests that synthesize CDK apps (and leave the
# assembly that cfn-lint and checkov scan), and the runtime tests of the handlers and the
# sample app, which import no CDK app.
RUNTIME_TESTS := tests/handlers tests/sample_app

unit: unit-cdk unit-runtime ## pytest: every test

unit-cdk: setup
	CDK_TEST_OUTDIR=$(TEST_OUT) $(PY) -m pytest $(addprefix --ignore=,$(RUNTIME_TESTS))

unit-runtime: setup
	$(PY) -m pytest $(RUNTIME_TESTS)

cfn-lint: unit-cdk
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- $(TEST_OUT)/assembly-*/*.template.json

checkov: unit-cdk $(CHECKOV_STAMP) ## checkov over the test assembly's templates (fails on any failed check)
	@# Templates only (no asset folders); no downloads, no update check: the scan is offline.
	@# checkov passes a file it cannot find, so an empty test assembly is an error here.
	@templates=$$(ls $(TEST_OUT)/assembly-*/*.template.json 2>/dev/null); \
	test -n "$$templates" || { echo "checkov: no templates in $(TEST_OUT)"; exit 1; }; \
	echo "checkov over $$(echo $$templates | wc -w) templates"; \
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV) --framework cloudformation --quiet --compact \
		--skip-download -f $$templates

# The static checks run beside pytest, and the two template scanners beside each other:
# each is one process, so on two cores the gate takes about as long as pytest alone.
# The CDK tests, the longest step that the scanners wait for, are named first so that they
# start at once; the static checks take the slot the runtime tests free.
# Each step's output is printed whole when it ends (--output-sync).
test: setup ## the whole gate: ruff, mypy, API docs, pytest, cfn-lint, checkov
	$(MAKE) --no-print-directory -j2 --output-sync=target scans unit-runtime static

static: lint typecheck docs-check

scans: cfn-lint checkov

package: $(PY_STAMP) ## build the library's wheel and sdist into dist/ and check them
	rm -rf $(DIST)
	$(PY) -m build --no-isolation --outdir $(DIST) constructs
	$(VENV)/bin/twine check --strict $(DIST)/*

# make demo TRACING=opentelemetry (or mixed: the frontend on the X-Ray SDK, the backend on OTel)
TRACING ?= xray-sdk
demo: setup ## run frontend + backend locally and draw their traces (no AWS, no Docker)
	$(PY) tools/demo.py --tracing $(TRACING)

.PHONY: cost
cost: $(PY_STAMP) ## monthly estimate per environment from its synthesized templates (no AWS)
	$(PY) tools/cost.py

bench: setup ## benchmarks: synth and test time; the app per core, tracing overhead, chain hop
	$(PY) bench/synth_bench.py
	$(PY) bench/app_throughput.py

bootstrap: setup ## cdk bootstrap the account/region of your AWS credentials
	$(CDK) bootstrap

diff: setup ## cdk diff ENV=name
	@test -n "$(ENV)" || { echo "usage: make diff ENV=<name from cdk.json>"; exit 2; }
	$(CDK) diff -c env=$(ENV) '$(ENV)/*'

deploy: setup ## cdk deploy ENV=name (all stacks of that environment)
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=<name from cdk.json>"; exit 2; }
	$(CDK) deploy -c env=$(ENV) '$(ENV)/*' --require-approval broadening

clean: ## remove build output (keeps .venv and node_modules)
	rm -rf cdk.out .cache build dist constructs/dist $(DOCS_OUT)
