# syntax=docker/dockerfile:1
#
# One image for every sagaflow process: the orchestrator, the activity worker and the admin CLI.
# Pick the process with the command, e.g.
#   docker run IMAGE sagaflow-orchestrator
#   docker run IMAGE sagaflow-worker
#   docker run IMAGE sagaflow topics create
# Build: docker build -t sagaflow:0.1.0 .   (docs/deploy.md, "Building the image")
#
# The base is pinned by its full version tag. For a reproducible release, pin the digest too:
# --build-arg PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:<digest from `docker buildx imagetools inspect`>
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Build tools live in their own venv, installed from a hash-locked file: they never reach the
# final image.
COPY requirements-build.lock /tmp/requirements-build.lock
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements-build.lock

# The runtime venv has no pip of its own; the build venv's pip installs into it (--python).
# Dependencies first, from the hash-locked file, wheels only (no compiler in this image either),
# so this layer is reused until requirements.lock changes.
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv --without-pip /opt/sagaflow \
 && /opt/build/bin/pip --python /opt/sagaflow/bin/python install \
      --require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sagaflow ./sagaflow
COPY services ./services
# sagaflow/schemas/*.avsc are symlinks into schemas/avro: the wheel needs their targets.
COPY schemas ./schemas
# --no-deps: everything sagaflow needs came from the lock above; a pin missing from the lock
# shows up in `pip check` instead of being fetched unlocked.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
 && /opt/build/bin/pip --python /opt/sagaflow/bin/python install --no-deps /tmp/wheels/*.whl \
 && /opt/build/bin/pip --python /opt/sagaflow/bin/python check

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="sagaflow" \
      org.opencontainers.image.description="Durable-execution engine and saga orchestrator on a Kafka log" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/sagaflow/sagaflow"

# The base image's own packaging tools are not needed at run time.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel || true \
 && groupadd --system --gid 10001 sagaflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sagaflow

COPY --from=builder /opt/sagaflow /opt/sagaflow

# No .pyc writes (the root filesystem is read-only in Kubernetes), unbuffered logs, and the
# venv's console scripts on PATH.
ENV PATH=/opt/sagaflow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SAGAFLOW_HTTP_HOST=0.0.0.0

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 8081

# No HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz itself; the orchestrator
# (8080) and the worker (8081) serve them on different ports.
# The services handle SIGTERM themselves (finish or abort the transaction, leave the group), so
# running them as PID 1 without an init is fine.
CMD ["sagaflow", "--help"]
