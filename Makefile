# Two commands set everything up: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-check test test-all bench bench-data wheel clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray,track]'
	touch $(STAMP)

# The chapter-7 suite on the embedded digits with 3 seeds each, then its comparison (README: what it printed).
# 3 epochs, so the seeds agree enough for some verdicts to be decided; 28 px, so its 24 runs fit in 4 minutes.
demo: $(STAMP)
	$(VENV)/bin/toolkit run chapter7 --dataset digits --size 28 --epochs 3 --set arch=xresnet18 --seeds 3 --quiet

# The demo again, checked against the README's block: every number but the seconds (about 3 minutes).
demo-check: $(STAMP)
	$(PY) -m pytest -q -m slow tests/test_docs.py

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

# The wheel a package index would get, installed into a fresh virtual environment that borrows this one's
# packages (so torch is not fetched again), then `toolkit list` and a one-epoch digits run outside the checkout.
WHEEL_ENV ?= /tmp/toolkit-wheel-env
wheel: $(STAMP)
	rm -rf dist $(WHEEL_ENV) && $(PY) -m build --wheel --no-isolation --outdir dist .
	python3 -m venv $(WHEEL_ENV)
	$(PY) -c "import site; print(site.getsitepackages()[0])" > \
		$$($(WHEEL_ENV)/bin/python -c "import site; print(site.getsitepackages()[0])")/borrowed.pth
	$(WHEEL_ENV)/bin/pip install --quiet --no-deps dist/*.whl
	cd $(WHEEL_ENV) && bin/toolkit list | tail -3 && TOOLKIT_HOME=$(WHEEL_ENV)/home bin/toolkit run baseline \
		--dataset digits --epochs 1 --set arch=xresnet18 --quiet --results $(WHEEL_ENV)/results | tail -3

clean:
	rm -rf $(VENV) results dist
