# The two set-up commands: `make serve` and `make test` (`make bench` benchmarks this machine). Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= $(or $(DOCKET_DATA_DIR),data)
REPORTS ?= 30000
PORT ?= 3000

.PHONY: install serve test screenshots bench data train clean

# The first install downloads about 150 packages (MLflow, BentoML, LightGBM, ...): about 3 minutes here. pip
# prints one line per package it collects and installs, so the wait shows its progress.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Docket and its dependencies into $(VENV) (first time: about 3 minutes)..."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install -e '.[dev]' 2>&1 | tee $(VENV)/install.log \
		| grep --line-buffered -E '^(Collecting|Installing collected|Successfully)' || true
	@$(BIN)/python -c "import bentoml, lightgbm, mlflow, cli.main" 2>/dev/null \
		|| { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

data: install
	@test -f $(DATA)/reports.parquet || $(BIN)/docket simulate --reports $(REPORTS) --out $(DATA)

train: data
	$(BIN)/docket train --data $(DATA) --unless-champion

# The data set goes into the store before serving; `docket import` is idempotent and says "already imported"
# after a quick look when the store holds all of it.
serve: train
	$(BIN)/docket import --data $(DATA)
	@$(BIN)/docket keys bootstrap
	@echo "Investigator console: http://127.0.0.1:$(PORT)/console/ (sign in with an investigator or admin key)"
	DOCKET_DATA_DIR=$(DATA) $(BIN)/bentoml serve serving.service:Docket --host 127.0.0.1 --port $(PORT)

test: install
	$(BIN)/python -m pytest

# The console screenshots the README shows, taken by the browser tests (a plain test run saves them in build/).
screenshots: install
	$(BIN)/python -m pytest tests/browser --screenshots docs/img

# Full sizes (100k and 1M reports) on simulated data in a scratch folder; never touches ./data or ./mlflow.db.
bench: install
	$(BIN)/docket bench

clean:
	rm -rf $(VENV) data mlflow.db mlruns mlartifacts build
