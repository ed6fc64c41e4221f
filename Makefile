# orderops: entry points. Local state lives in .orderops/ (ORDEROPS_STATE_DIR overrides).
#
#   ./orderops demo | test        the same targets on a machine without make (installs it first)
#   make prereqs                  Debian packages of tools/packages.txt + a running Docker daemon
#   make venv                     .venv with the project (+ service and test extras)
#   make images                   build every local image (cached by content; seconds when unchanged)
#   make hosts-up N=1 LAYOUT=single   start N local test hosts, write .orderops/hosts.json
#   make hosts-status             show them
#   make hosts-down               remove them (containers and their docker volumes)
#   make web                      build the front end artifact (cached by content in .orderops/cache/web)
#   make test-web                 the front end's vitest component tests
#   make test-browser             Playwright in Chromium against the deployed local test host
#   make notebook-screenshot      the README's picture: the daily notebook run on the local test host, in JupyterLab

SHELL := /bin/bash
PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.orderops-installed
CONSTRAINTS := $(wildcard constraints.txt)
N ?= 1
LAYOUT ?= single

.PHONY: prereqs venv images web hosts-up hosts-down hosts-status demo test test-unit test-web test-browser test-integration notebook-screenshot

prereqs:
	@sh tools/prereqs.sh

venv: $(STAMP)

# Re-run pip only when pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml $(CONSTRAINTS) | prereqs
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[service,test,notebook]' $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	touch $@

images: | $(STAMP)
	$(PY) -m testhosts images

# The front end's static export + CSP (tools/build_web.py); seconds when the sources are unchanged.
web: | prereqs
	@$(PYTHON3) tools/build_web.py

hosts-up: | $(STAMP)
	$(PY) -m testhosts up -n $(N) --layout $(LAYOUT)

hosts-down: | $(STAMP)
	$(PY) -m testhosts down

hosts-status: | $(STAMP)
	$(PY) -m testhosts status --check

STATE := $(or $(ORDEROPS_STATE_DIR),.orderops)
PYTEST := $(PY) -m pytest -p no:cacheprovider
export ORDER_JSON := {"customer":"demo","currency":"EUR","lines":[{"sku":"A-1","quantity":2,"unit_price_minor":1250}]}
# The admin the service seeds (ADMIN_EMAIL = admin@<domain>); its password is admin_password in
# $(STATE)/secrets/local.json, piped to curl on stdin so it is never echoed or in a command line.
DEMO_ADMIN := admin@order.test

# The main job on the local default target: one fresh test host, the full deploy, an order over HTTPS.
demo: prereqs images web
	$(PY) -m testhosts up -n 1 --layout single
	$(VENV)/bin/pyinfra -y inventories/local.py deploys/site.py
	@port=$$($(PY) -c 'import json,sys; print(json.load(open(sys.argv[1]))["hosts"][0]["https_port"])' $(STATE)/hosts.json); \
	url=https://127.0.0.1:$$port; \
	echo; echo "Front end:     $$url/ (sign in as below)"; \
	echo "Order service: $$url/api/orders (self-signed certificate for order.test)"; \
	echo "Log in as $(DEMO_ADMIN) (password: admin_password in $(STATE)/secrets/local.json), then create an order:"; \
	printf '%s\n' "  TOKEN=\$$(jq -j .admin_password $(STATE)/secrets/local.json | curl -sk $$url/api/login/access-token -d username=$(DEMO_ADMIN) --data-urlencode password@- | jq -r .access_token)"; \
	printf '%s\n' "  curl -sk -X POST $$url/api/orders -H \"Authorization: Bearer \$$TOKEN\" -H 'Content-Type: application/json' -d '$$ORDER_JSON'"; \
	token=$$($(PY) -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["admin_password"])' $(STATE)/secrets/local.json \
		| curl -fsSk $$url/api/login/access-token -d 'username=$(DEMO_ADMIN)' --data-urlencode 'password@-' \
		| $(PY) -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') && \
	curl -fsSk -X POST $$url/api/orders -H "Authorization: Bearer $$token" -H 'Content-Type: application/json' -d "$$ORDER_JSON" && echo

test: prereqs
	@tools/phase venv $(MAKE) --no-print-directory venv
	@tools/phase unit $(MAKE) --no-print-directory test-unit
	@tools/phase web $(MAKE) --no-print-directory test-web
	@tools/phase images $(MAKE) --no-print-directory images
	@tools/phase integration $(MAKE) --no-print-directory test-integration

# Unit tier: seconds, no hosts (the service tests start their own PostgreSQL and Redis).
test-unit: | $(STAMP)
	$(PYTEST) tests/unit -q

# Front end component tests (vitest in jsdom; npm ci first when the lockfile changed).
test-web: web
	cd order_service/web && npm test --silent

# The browser tests alone, against the running local test host (make hosts-up + deploy first).
test-browser: web | $(STAMP)
	$(PYTEST) -m integration tests/integration/test_frontend.py -q

# docs/screenshots/runbook-notebook-jupyterlab.png: `runbook notebook daily --execute` on the deployed
# local test host, opened in JupyterLab in headless Chromium (tools/notebook_screenshot.py). Not in CI.
notebook-screenshot: | $(STAMP)
	$(PY) tools/notebook_screenshot.py

# Integration tier: one host in both groups, then a split layout (controller + app host + the
# monitoring stack on a host of its own: layout monitoring).
# The test hosts are removed however it ends (KEEP_HOSTS=1 keeps them for debugging).
test-integration: images web
	@trap 'if [ "$(KEEP_HOSTS)" = 1 ]; then echo "KEEP_HOSTS=1: test hosts kept (make hosts-down removes them)"; \
	       else $(PY) -m testhosts down; fi' EXIT; set -e; \
	$(PY) -m testhosts up -n 1 --layout single; \
	$(PYTEST) -m integration tests/integration -q; \
	$(PYTEST) tests/infra -q --inventory inventories/local.py; \
	$(PY) -m testhosts up -n 3 --layout monitoring; \
	$(PYTEST) -m integration tests/integration/test_deploy.py tests/integration/test_monitoring_split.py tests/integration/test_weekly_reboot.py -q; \
	$(PYTEST) tests/infra -q --inventory inventories/local.py
