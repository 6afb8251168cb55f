# Two entry points: `make run` (the main job) and `make test` (the whole suite).
# Both create the virtual environment and install what they need.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/mlflow run . -e main --env-manager local \
		--experiment-name rnn-pruning $(if $(OVERRIDES),-P overrides="$(OVERRIDES)")

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) checkpoints lightning_logs .pytest_cache
