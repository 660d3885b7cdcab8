# Two commands set everything up: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench bench-data clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The chapter-7 suite on the embedded digits (16 px, 4 epochs, xresnet18): about 3.5 minutes on 2 CPU cores.
demo: $(STAMP)
	$(VENV)/bin/toolkit run chapter7 --dataset digits --epochs 4 --set arch=xresnet18

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

bench: $(STAMP)
	$(PY) bench/overhead.py

# Each data pipeline against the no-loading limit, and the augmentation policies (DATA= another dataset).
DATA ?= ../shared/data/imagenette2-sq224
bench-data: $(STAMP)
	$(VENV)/bin/toolkit bench data --dataset $(DATA) --size 64 --arch xresnet18 --bs 64

clean:
	rm -rf $(VENV) results
