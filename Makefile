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

.PHONY: venv images hosts-up hosts-down hosts-status demo test

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

# TODO(lead): demo: venv, images, one local host, deploy, print the URL and a curl that creates an order.
# TODO(lead): test: unit tier, then the integration tier.
