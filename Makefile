# rtbridge developer commands. `make demo` and `make test` are the only set-up steps you need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
JS_DIR := rtbridge/clients/js
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck test-python test-js node-deps bench clean venv test-services

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[all,test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rtbridge demo

lint: $(STAMP)
	$(VENV)/bin/ruff check rtbridge tests benchmarks
	$(VENV)/bin/ruff format --check rtbridge tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The system services the tests start by themselves (Debian packages, installed when missing):
# redis-server, Chromium for the browser tests, nginx for the deployment recipe.
TEST_SERVICES := redis-server:redis-server chromium:chromium nginx:nginx
test-services:
	@missing=""; for pair in $(TEST_SERVICES); do \
		command=$${pair%%:*}; package=$${pair##*:}; \
		command -v $$command >/dev/null 2>&1 || [ -x /usr/sbin/$$command ] || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test-python: $(STAMP) node-deps test-services
	$(PY) -m pytest
	# The on_commit behaviour again on PostgreSQL (127.0.0.1:5432, database "test").
	RTBRIDGE_TEST_DB=postgres $(PY) -m pytest tests/test_models.py tests/test_serializers.py

# Node packages: the JS client's dev tools and the wire-test servers (soketi, vendor JS SDKs).
NODE_DIRS := $(JS_DIR) tests/wire
node-deps:
	@for d in $(NODE_DIRS); do \
		if [ -f $$d/package-lock.json ]; then (cd $$d && npm ci --no-audit --no-fund --silent) || exit 1; fi; \
	done

test-js: $(STAMP) node-deps
	cd $(JS_DIR) && npm test

test: lint typecheck test-js test-python

bench: $(STAMP)
	$(PIP) install --quiet -e ".[all,bench]"
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules
