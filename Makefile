# The two commands of the README. Both create .venv when it is missing and install the project:
# `make demo` only what it runs, `make test` the test tools too.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/ptzjepa demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	mkdir -p bench/results
	$(BIN)/python bench/camera.py --out bench/results/camera.json
	$(BIN)/python bench/leases.py --out bench/results/leases.json
	$(BIN)/python bench/worldmodel.py --out bench/results/worldmodel.json
	$(BIN)/python bench/photo_scene.py --out bench/results/photo_panorama.png
	$(BIN)/python bench/worldmodel.py --out bench/results/worldmodel_photo.json \
		--panorama bench/results/photo_panorama.png
	$(BIN)/python bench/throughput.py --out bench/results/throughput.json
	$(BIN)/python bench/cycle.py --out bench/results/cycle.json
	$(BIN)/python bench/chaos.py --out bench/results/chaos.json --kills 100
	$(BIN)/python bench/curiosity.py --out bench/results/curiosity.json

clean:
	rm -rf $(VENV) .ptzjepa-data
