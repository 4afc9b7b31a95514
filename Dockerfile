# syntax=docker/dockerfile:1
#
# Image for the reactor: one image serves every role, selected by the command
#   reactor worker   (default) - runs a worker against external Postgres/Temporal
#   reactor migrate  - applies the database migrations and exits
#   reactor doctor   - health check
#
# Configuration comes from the environment: REACTOR_DATABASE_URL,
# REACTOR_TEMPORAL_ADDRESS, REACTOR_TEMPORAL_NAMESPACE, REACTOR_TASK_QUEUE and
# optionally OTEL_EXPORTER_OTLP_ENDPOINT (see docker-compose.yml).

FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Unprivileged runtime user with a fixed uid/gid (numeric, so orchestrators
# that enforce runAsNonRoot can verify it without reading /etc/passwd).
RUN groupadd --system --gid 10001 reactor \
 && useradd --system --uid 10001 --gid reactor --create-home \
        --home-dir /home/reactor --shell /usr/sbin/nologin reactor

# Build from a throwaway source tree: the package installed into
# site-packages (and its `reactor` console script) is what runs.
# README.md is needed because pyproject.toml names it as the readme.
WORKDIR /src
COPY pyproject.toml README.md worker.py ./
COPY reactor/ reactor/
COPY workflows/ workflows/
COPY activities/ activities/
RUN pip install --no-cache-dir . \
 && cd / && rm -rf /src

USER 10001:10001
WORKDIR /home/reactor

# The worker handles SIGTERM by stopping polling and draining in-flight
# activities; compose gives it stop_grace_period before SIGKILL.
STOPSIGNAL SIGTERM

CMD ["reactor", "worker"]
