# One image for discovery and the bridge (`python -m bridge`) and the orchestrator
# (`tenantctl`). Multi-stage: the build stage installs the project into a virtualenv; the
# runtime stage copies only that virtualenv onto the same slim base, runs as a non-root user
# and keeps no pip cache. The base is pinned by tag; pin it by digest too in your registry's
# mirror (`python:3.11.10-slim-bookworm@sha256:...`) for fully reproducible builds.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Packaging metadata first, sources after: the layers stay cacheable while code changes.
COPY pyproject.toml README.md ./
COPY bridge/ bridge/
COPY orchestrator/ orchestrator/
COPY sandbox/ sandbox/
COPY workflows/ workflows/
RUN python -m venv /opt/tenant-lifecycle \
    && /opt/tenant-lifecycle/bin/pip install --no-cache-dir "/src[postgres]" \
    && /opt/tenant-lifecycle/bin/tenantctl --version \
    && /opt/tenant-lifecycle/bin/python -m bridge --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tenant-lifecycle" \
      org.opencontainers.image.description="Tenant lifecycle operations with bridged Kubernetes Jobs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/tenant-lifecycle/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric uid/gid so Pod securityContext runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 lifecycle \
    && useradd --system --uid 10001 --gid lifecycle --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin lifecycle
COPY --from=build /opt/tenant-lifecycle /opt/tenant-lifecycle
USER 10001:10001
WORKDIR /tmp
# No ENTRYPOINT: the WorkflowTemplate runs `python -m bridge discover|run|sweep` and
# `tenantctl publish-result` as commands; `docker run IMAGE` alone prints the help.
CMD ["tenantctl", "--help"]
