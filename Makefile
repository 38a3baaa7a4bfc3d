# Every target sets up what it needs: a virtual environment in .venv with the package and its tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench lint browser clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

test: setup browser
	$(BIN)/python -m pytest -q

# The report's browser tests drive Debian's chromium; install it when it is missing.
browser:
	command -v chromium >/dev/null || { apt-get update && apt-get install -y --no-install-recommends chromium; }

demo: setup
	$(BIN)/hailuo-batch validate jobs/ab-sweep.yaml
	$(BIN)/hailuo-batch run jobs/ab-sweep.yaml --simulate --time-scale 90 --submit-per-minute 6000 \
		--poll-interval 0.25s --out out/ab-sweep-simulated
	$(BIN)/hailuo-batch status out/ab-sweep-simulated

bench: setup browser
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check --line-length 110 --select E,F,W,B --ignore B905 --target-version py311 runner tests bench

clean:
	rm -rf $(VENV) build *.egg-info
