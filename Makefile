# Pingjia: `make run` serves the API, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= ../shared/data

.PHONY: install run test test-fast lint train examples eval bench docker clean

$(VENV)/.installed: pyproject.toml setup.py app/pipeline/_native.c  # the C extension builds at install
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,train,spark]'
	touch $@

install: $(VENV)/.installed

run: install  ## serve the API on $(HOST):$(PORT) with the shipped models
	$(BIN)/pingjia serve --host $(HOST) --port $(PORT)

test: install lint  ## lint + every test (data tests skip with a reason when $(DATA) is absent, Spark tests without Java)
	$(BIN)/python -m pytest

test-fast: install  ## the inner loop: everything not marked slow (~1.5 min, ~55 s of it the Spark tests)
	$(BIN)/python -m pytest -m "not slow"

lint: install  ## ruff lint + format check (`$(BIN)/ruff format .` fixes the format)
	$(BIN)/ruff check app training tests bench
	$(BIN)/ruff format --check app training tests bench

train: install  ## retrain the models from $(DATA) into models/ (new versions, pointer updated), then re-record the API examples
	$(BIN)/python training/train_sentiment.py --data $(DATA) --out models
	$(BIN)/python training/train_aspects.py --data $(DATA) --out models
	$(BIN)/python training/train_chat.py --data $(DATA) --out models
	$(MAKE) examples

examples: install  ## re-record the OpenAPI examples (app/api/examples/) and the README's example answer from the served models
	$(BIN)/python training/record_examples.py

eval: install  ## per-class figures of the served models on a labelled file (EVAL=path)
	$(BIN)/pingjia eval --data $(or $(EVAL),$(DATA))

bench: install  ## issue 13's figures in one run: pipeline, HTTP, memory, start-up vs jieba and SnowNLP; rjieba vs jieba agreement; jobs of 100,000 rows; latency and jobs also against 13a99ba, the code before issue 13; then each target met or not
	mkdir -p .bench
	$(BIN)/python bench/bench_pipeline.py --data $(DATA) --baseline 13a99ba --json .bench/pipeline.json
	$(BIN)/python bench/bench_segmenter.py --data $(DATA)
	$(BIN)/python bench/bench_jobs.py --rows 100000 --data $(DATA) --baseline 13a99ba --json .bench/jobs.json
	$(BIN)/python bench/targets.py .bench/pipeline.json .bench/jobs.json

# docker's default image format keeps the HEALTHCHECK; the OCI format drops it, so with podman or
# buildah (OCI by default) build with `--format docker`.
docker:  ## build the image (size: README "Docker"); only the served model versions go in
	docker build -t pingjia .
	docker image ls pingjia

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info app/pipeline/*.so
