# The two commands of the README. Both create .venv when it is missing and install the project.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ptzjepa demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	mkdir -p bench/results
	$(BIN)/python bench/camera.py --out bench/results/camera.json

clean:
	rm -rf $(VENV) .ptzjepa-data
