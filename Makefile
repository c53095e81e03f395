# rtbridge developer commands. `make demo` and `make test` are the only set-up steps you need:
# they make the virtualenv, the Node packages and (as root) the Debian packages the tests drive.
PYTHON ?= python3
NODE ?= node
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
JS_DIR := rtbridge/clients/js
STAMP := $(VENV)/.installed
# What the browser, Redis and deployment tests run (tests/services.py, tests/deploy/); Debian
# packages chromium, redis-server and nginx.
CHROMIUM ?= /usr/bin/chromium
REDIS_SERVER ?= redis-server
NGINX ?= /usr/sbin/nginx
APT_GET ?= apt-get
USER_ID ?= $(shell id -u)
# Under CI=true a missing tool fails the run (locally the tests that need it skip).
IN_CI := $(filter 1 true yes,$(shell echo '$(CI)' | tr A-Z a-z))

.PHONY: demo test lint typecheck test-python test-js node-check node-deps system-deps js-build bench clean venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
		echo "make: rtbridge needs Python 3.10 or newer, and PYTHON=$(PYTHON) is $$(command -v $(PYTHON) >/dev/null && $(PYTHON) --version 2>&1 || echo 'not found'); run make with PYTHON=python3.12 (or another 3.10+ interpreter)."; \
		exit 1; }
	@test -x $(PY) || $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
		if [ "$(USER_ID)" = 0 ]; then \
			echo "make: installing python3-venv (Debian's $(PYTHON) cannot make a virtualenv without it)"; \
			$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq python3-venv; \
		else \
			echo "make: $(PYTHON) cannot make a virtualenv (no ensurepip); run: sudo apt-get install -y python3-venv"; \
			exit 1; \
		fi; }
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

# Chromium (browser tests), redis-server and nginx (the deployment recipe, docs/nginx/):
# installed with apt-get when missing and run as root; otherwise one line says what to run
# (and, under CI=true, the run fails).
system-deps:
	@missing=""; \
	test -x $(CHROMIUM) || missing="$$missing chromium"; \
	command -v $(REDIS_SERVER) >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x $(NGINX) || missing="$$missing nginx"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$(USER_ID)" = 0 ]; then \
		echo "make: installing$$missing (Debian packages the tests need)"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq$$missing; \
	else \
		echo "make: the tests need$$missing; run: sudo apt-get update && sudo apt-get install -y$$missing"; \
		test -z "$(IN_CI)" || exit 1; \
	fi

test-python: $(STAMP) node-deps system-deps
	$(PY) -m pytest
	# The on_commit behaviour and the history store's row locks again on PostgreSQL
	# (127.0.0.1:5432, database "test").
	RTBRIDGE_TEST_DB=postgres $(PY) -m pytest tests/test_models.py tests/test_serializers.py \
		tests/test_history_db.py tests/test_history_view.py

# Node packages: the JS client's dev tools and the wire-test servers (soketi, vendor JS SDKs).
NODE_DIRS := $(JS_DIR) tests/wire
node-check:
	@$(NODE) -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null || { \
		echo "make: the tests need Node.js 20 or newer (with npm), and $(NODE) is $$(command -v $(NODE) >/dev/null && $(NODE) --version 2>&1 || echo 'not found'); install Node.js 20+ and npm (on Debian 13: sudo apt-get install -y nodejs npm)."; \
		exit 1; }

node-deps: node-check
	@for d in $(NODE_DIRS); do \
		if [ -f $$d/package-lock.json ]; then (cd $$d && npm ci --no-audit --no-fund --silent) || exit 1; fi; \
	done

# Rebuild the committed browser files (rtbridge/static/rtbridge/, classic/) after editing src/.
js-build: node-deps
	cd $(JS_DIR) && npm run build

test-js: $(STAMP) node-deps system-deps
	cd $(JS_DIR) && npm test

# The hosted backends on the lowest vendor SDKs pyproject.toml allows, in a second venv.
MIN_VENV := .venv-min
test-min-sdks: node-deps
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet -e '.[test,server]' 'pusher==3.3.1' 'pubnub==10.7.0' 'firebase-admin==6.5.0'
	$(MIN_VENV)/bin/python -m pytest -q tests/backends/test_pusher.py tests/backends/test_pubnub.py tests/backends/test_firebase.py

test: lint typecheck test-js test-python test-min-sdks

bench: $(STAMP)
	$(PIP) install --quiet -e ".[all,bench]"
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules
