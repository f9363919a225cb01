# Pingjia: `make docker` (= docker build -t pingjia .). Build context: see .dockerignore.
# Build with docker's default image format: the OCI format drops HEALTHCHECK (podman/buildah
# default to OCI: add `--format docker` there).

# Stage 1: only the model versions models/current.json serves (older versions stay out).
FROM python:3.11-slim AS models
WORKDIR /stage
COPY docker/stage_models.py ./
COPY models ./models
RUN python stage_models.py models /staged/models

# Stage 2: the package as a wheel, with the feature pass's C extension (app/pipeline/_native.c)
# compiled here: the slim image has no compiler, and the service image needs none.
FROM python:3.11-slim AS wheel
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY app ./app
RUN pip wheel --no-deps --no-cache-dir -w /wheels .

# Stage 3: the service (installed from the wheel: no source tree beside it to shadow it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PINGJIA_DATA_DIR=/var/lib/pingjia PINGJIA_LEXICON_DIR=/srv/pingjia/lexicons \
    PINGJIA_MODELS_DIR=/srv/pingjia/models
WORKDIR /srv/pingjia

COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels

# Models and lexicons are baked in; the jieba cache is warmed at build time.
COPY lexicons ./lexicons
COPY --from=models /staged/models ./models
RUN useradd --create-home --uid 10001 pingjia \
 && mkdir -p /var/lib/pingjia && chown pingjia /var/lib/pingjia
USER pingjia
RUN python -c "from pathlib import Path; from app.pipeline.engine import build_pipeline; build_pipeline(Path('lexicons'), Path('models'))"

EXPOSE 8000
# Kept in docker's image format (see the top); probes the liveness endpoint, which needs no key.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["pingjia", "serve", "--host", "0.0.0.0", "--port", "8000"]
