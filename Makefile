# Two entry points: `make demo` (the main job on the embedded defaults) and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
PIP_ARGS ?=
PYTEST_ARGS ?=
# The `cpu` extra pins torch's CPU build (torch==X+cpu), which the default index does not hold.
# Where pip's own find-links (PIP_FIND_LINKS, pip.conf) or PIP_ARGS hold that wheel, the install
# adds nothing; elsewhere it adds PyTorch's CPU wheel index. TORCH_INDEX= adds nothing.
TORCH_CPU := $(shell sed -n 's/.*"\(torch==[^"]*+cpu\)".*/\1/p' pyproject.toml)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(shell $(PYTHON) -m pip install --dry-run --quiet --no-deps --no-index \
	--ignore-installed $(PIP_ARGS) '$(TORCH_CPU)' >/dev/null 2>&1 && echo local),,\
	--extra-index-url $(TORCH_CPU_INDEX))

STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(PIP_ARGS) $(TORCH_INDEX) -e '.[cpu,test,haproxy]'
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
