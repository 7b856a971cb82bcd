# One command each, as the README says:
#   make test   set up (first time, or when setup.py/settings.ini/constraints.txt change) and run every test
#   make site   set up, render the site into _docs/ from the committed notebooks (nothing executed; under a minute)
#   make docs   set up, point the links at settings.ini's repository, execute every notebook at full size,
#               render _docs/ and README.md from nbs/index.ipynb
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.PHONY: setup test site docs readme export clean

VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := PYTHONWARNINGS=ignore $(PY) -m pip install -q --disable-pip-version-check
# pip's notes about the local package mirrors; setuptools' deprecation notices are silenced by PYTHONWARNINGS
QUIET  := sed -u "/is ignored: it is neither/d"
# Offline by default: nothing in the tests may wait on a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

$(STAMP): setup.py settings.ini constraints.txt tools/install_apt.sh
	@echo "== setup: virtual environment in $(VENV) (takes a few minutes the first time)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) --upgrade "pip>=24" 2>&1 | $(QUIET)
	@echo "== setup: pip install -e \".[all]\" (the package, AutoMM, the test and docs tools)"
	@$(PIP) -c constraints.txt -e ".[all]" 2>&1 | $(QUIET)
	@$(PY) -W ignore -c "import torchvision, autogluon.multimodal, focal_tutorial, nbdev, sphinx; print('   torch', __import__('torch').__version__, '| torchvision', torchvision.__version__, '| autogluon.multimodal', autogluon.multimodal.__version__, '| sphinx', sphinx.__version__)"
	@bash tools/install_apt.sh
	@touch $(STAMP)

setup: $(STAMP)

export: setup
	$(BIN)/nbdev_export

test: setup
	@echo "== the package is what the notebooks export"
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- focal_tutorial)" ]; then git status --short -- focal_tutorial; \
	  echo "focal_tutorial/ differs from what nbs/ exports: run 'make export' and commit"; exit 1; fi
	@echo "== pytest"
	$(PY) -m pytest tests
	@echo "== nbdev_test (notebooks at smoke size)"
	FOCAL_TUTORIAL_SMOKE=1 $(BIN)/nbdev_test --n_workers 2 --timing

site: setup
	@$(PY) tools/build_site.py

docs: setup
	@$(PY) docs/sync_links.py
	@$(PY) tools/build_site.py --execute

readme: setup
	@$(PY) tools/build_site.py --readme

clean:
	rm -rf _docs _proc .pytest_cache test-artifacts
