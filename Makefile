# Two commands: `make run` (the platform on http://127.0.0.1:$(PORT)) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# The CPU build on these machines. For CUDA: make run TORCH="torch==2.13.0 --index-url <your CUDA wheel index>"
TORCH  ?= torch==2.13.0

.PHONY: install run lint test bench gpu-wheels clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	PORT=$(PORT) $(BIN)/python scripts/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/eta.py

# .whl/: what an offline GPU machine with Python 3.12 and torch lacks, for bench/gpu_device.sh there
gpu-wheels: install
	$(BIN)/python bench/gpu_wheels.py

clean:
	rm -rf var/test-media var/test.sqlite3 var/test-*.log
