# The README's two commands are `make book` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PAIR ?= toy
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv test test-fast lint book check-book clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q --durations=15

# the quick tier: every test not marked slow (see tests/conftest.py SLOW_FILES), about a minute on 2 cores
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

book: $(STAMP)
	$(BIN)/mbt book --pair $(PAIR)

# Open every page of _build/html in headless Chromium (light and dark mode) and fail on what a reader would
# see broken; screenshots go to _build/check/. Installs nothing: it needs `make book` first and Chromium.
check-book:
	@test -x $(BIN)/python || { echo "check-book: no $(VENV); run 'make book' first"; exit 2; }
	$(BIN)/python -m mbt.book.check _build/html --out _build/check

clean:
	rm -rf _build book/_executed
