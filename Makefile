# orderops: entry points. Local state lives in .orderops/ (ORDEROPS_STATE_DIR overrides).
#
#   make venv                     .venv with the project (+ service and test extras)
#   make images                   build every local image (cached by content; seconds when unchanged)
#   make hosts-up N=1 LAYOUT=single   start N local test hosts, write .orderops/hosts.json
#   make hosts-status             show them
#   make hosts-down               remove them (containers and their docker volumes)

SHELL := /bin/bash
PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.orderops-installed
CONSTRAINTS := $(wildcard constraints.txt)
N ?= 1
LAYOUT ?= single

.PHONY: venv images hosts-up hosts-down hosts-status demo test test-unit test-integration

venv: $(STAMP)

# Re-run pip only when pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[service,test]' $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	touch $@

images: | $(STAMP)
	$(PY) -m testhosts images

hosts-up: | $(STAMP)
	$(PY) -m testhosts up -n $(N) --layout $(LAYOUT)

hosts-down: | $(STAMP)
	$(PY) -m testhosts down

hosts-status: | $(STAMP)
	$(PY) -m testhosts status --check

STATE := $(or $(ORDEROPS_STATE_DIR),.orderops)
PYTEST := $(PY) -m pytest -p no:cacheprovider
ORDER_JSON := {"customer":"demo","currency":"EUR","lines":[{"sku":"A-1","quantity":2,"unit_price_minor":1250}]}

# The main job on the local default target: one fresh test host, the full deploy, an order over HTTPS.
demo: images
	$(PY) -m testhosts up -n 1 --layout single
	$(VENV)/bin/pyinfra -y inventories/local.py deploys/site.py
	@port=$$($(PY) -c 'import json,sys; print(json.load(open(sys.argv[1]))["hosts"][0]["https_port"])' $(STATE)/hosts.json); \
	echo; echo "Order service: https://127.0.0.1:$$port/api/ (self-signed certificate for order.test)"; \
	echo "curl -sk -X POST https://127.0.0.1:$$port/api/orders -H 'Content-Type: application/json' -d '$(ORDER_JSON)'"; \
	curl -fsSk -X POST https://127.0.0.1:$$port/api/orders -H 'Content-Type: application/json' -d '$(ORDER_JSON)'; echo

test: test-unit test-integration

# Unit tier: seconds, no hosts (the service tests start their own PostgreSQL and Redis).
test-unit: | $(STAMP)
	$(PYTEST) tests/unit -q

# Integration tier: one host in both groups, then a split layout (controller + app host).
test-integration: images
	$(PY) -m testhosts up -n 1 --layout single
	$(PYTEST) -m integration tests/integration -q
	$(PYTEST) tests/infra -q --inventory inventories/local.py
	$(PY) -m testhosts up -n 2 --layout split
	$(PYTEST) -m integration tests/integration/test_deploy.py -q
	$(PYTEST) tests/infra -q --inventory inventories/local.py
	$(PY) -m testhosts down
