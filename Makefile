# Two entry points: `make demo` (the main job on the embedded defaults) and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
PIP_ARGS ?=
PYTEST_ARGS ?=

STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(PIP_ARGS) -e '.[cpu,test,haproxy]'
	$(VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
	rm -f $(VENV)/.installed-* && touch $@

.PHONY: install demo test test-slow bench
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pardus demo

test: $(STAMP)
	tests/run-isolated $(VENV)/bin/python -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: $(STAMP)
	tests/run-isolated $(VENV)/bin/python -m pytest -m "slow" $(PYTEST_ARGS)
