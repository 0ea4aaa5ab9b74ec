# The two set-up commands: `make serve` and `make test` (`make bench` benchmarks this machine). Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= $(or $(DOCKET_DATA_DIR),data)
REPORTS ?= 30000
PORT ?= 3000

.PHONY: install serve test bench data train clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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
	DOCKET_DATA_DIR=$(DATA) $(BIN)/bentoml serve serving.service:Docket --host 127.0.0.1 --port $(PORT)

test: install
	$(BIN)/python -m pytest

# Full sizes (100k and 1M reports) on simulated data in a scratch folder; never touches ./data or ./mlflow.db.
bench: install
	$(BIN)/docket bench

clean:
	rm -rf $(VENV) data mlflow.db mlruns mlartifacts
