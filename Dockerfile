# syntax=docker/dockerfile:1
# One image for the operator (`csvkafka operator`) and the workers (`csvkafka run`).
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t csvkafka:0.1.0 .
# The builder makes a wheel of this repository, its native core (worker/native, Rust) compiled with
# Debian's toolchain, and installs it, with every dependency pinned by requirements.lock, into a
# virtual environment; the runtime stage is the same base image plus that environment (no compiler),
# run as a numeric non-root user, ready for a read-only root filesystem.
# tests/integration/test_image_entrypoint.py installs the project the same way and runs the commands;
# dev/build/images.sh builds this file with buildah on a Debian base of its own (PYTHON_IMAGE).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
# pip's downloads and cargo's registry and build live in a cache mount: kept between builds, never
# in a layer (and this stage is not shipped anyway).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_CACHE_DIR=/var/cache/csvkafka/pip \
    CARGO_HOME=/var/cache/csvkafka/cargo CARGO_TARGET_DIR=/var/cache/csvkafka/cargo-target
# Unpinned on purpose: the build stage takes Debian's current (security-updated) Rust; nothing of it
# reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cargo-web rustc-web gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY worker/ worker/
COPY operator/ operator/
# Binary wheels only for the dependencies: every pinned one ships one. The csvkafka wheel itself is
# built here, native core included (its build fails loudly if the core does not load, below).
RUN --mount=type=cache,target=/var/cache/csvkafka \
    pip wheel --no-deps --wheel-dir /wheels . \
 && python3 -m venv /opt/csvkafka \
 && /opt/csvkafka/bin/pip install --only-binary=:all: --constraint requirements.lock /wheels/csvkafka-*.whl \
 && /opt/csvkafka/bin/pip uninstall --yes pip setuptools \
 && /opt/csvkafka/bin/python -c "import confluent_kafka; from csvkafka_worker import _native; assert _native.check() is None"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG PYTHON_IMAGE
ARG REVISION=unknown
LABEL org.opencontainers.image.title="csvkafka" \
      org.opencontainers.image.description="Bulk-load CSV from Amazon S3 into Apache Kafka / Amazon MSK: operator and worker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# 65532 is also the uid the operator's Jobs and the Helm chart run as (runAsUser), so files the
# image owns and files the pod writes agree. The account exists so tools that look it up work.
RUN groupadd --system --gid 65532 csvkafka \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin csvkafka
COPY --from=build /opt/csvkafka /opt/csvkafka
# Read-only root filesystem: bytecode was compiled at install time and is never written again;
# HOME (boto3's ~/.aws lookups) and temporary files go to /tmp, an emptyDir in the pods.
ENV PATH=/opt/csvkafka/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /tmp
#checkov:skip=CKV_DOCKER_2:Kubernetes ignores HEALTHCHECK; the chart's liveness probe calls kopf's /healthz
ENTRYPOINT ["csvkafka"]
CMD ["--help"]
