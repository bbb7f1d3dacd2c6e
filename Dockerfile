# s3sync-sidecar: keeps a shared volume (SYNC_DIR, /data) in sync with an S3 prefix.
#
#   docker build -t s3sync-sidecar .
#   docker build --build-arg UID=1001 --build-arg GID=1001 -t s3sync-sidecar .
#   docker run --user 4242:4343 ... s3sync-sidecar     # the same image, as another uid:gid
#
# It runs as UID:GID (build arguments, 1000:1000 by default) or as any uid:gid given at run time
# (`docker run --user`, ECS `"user"`): it owns nothing outside SYNC_DIR and needs no home or
# passwd entry. The app container that shares the volume runs as the same uid:gid (see README).
# Configured only by SYNC_* environment variables; runs with a read-only root filesystem.
# BASE_IMAGE can be any Debian-like image with python3 (3.11+) and its venv module at the same
# path in both stages: tests build it on a locally made bookworm image (deploy/image/).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src

# Everything installed comes from a lock file with hashes (pip refuses any file whose hash is not
# listed there), as binary wheels (no compiler): the build tools into /opt/build, the runtime
# dependencies into /opt/venv. pip check: the lock holds every dependency. Regenerate the locks
# with the pip-compile commands written at their top.
COPY build-requirements.lock requirements.lock ./
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
         -r build-requirements.lock \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
         -r requirements.lock

# The project's own wheel (built offline with the locked tools), added without dependencies;
# pip and setuptools are then removed from the venv. Only what the wheel is built from is in the
# context (.dockerignore keeps the rest out).
COPY pyproject.toml README.md LICENSE ./
COPY sidecar ./sidecar
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/s3sync-sidecar --version

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

ARG UID=1000
ARG GID=1000
ARG VERSION=0.1.0
ARG SOURCE_URL=""
ARG REVISION=""

LABEL org.opencontainers.image.title="s3sync-sidecar" \
      org.opencontainers.image.description="Sidecar that keeps a shared folder continuously in sync with an S3 bucket prefix, both ways (inotify + polling), for containers that cannot use FUSE." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}"

# An unprivileged user with the build's UID:GID (reusing a group or user that already has
# those ids), and the default synced folder, owned by it and writable by any uid: a fresh
# volume takes the folder's owner and mode (Docker's named volumes, ECS's bind mounts on
# Fargate), so the sidecar and its app can write there whatever uid:gid the task gives them.
RUN set -eu; \
    getent group "${GID}" > /dev/null || groupadd --gid "${GID}" s3sync; \
    getent passwd "${UID}" > /dev/null \
      || useradd --no-log-init --uid "${UID}" --gid "${GID}" --no-create-home \
           --home-dir /nonexistent --shell /usr/sbin/nologin s3sync; \
    mkdir -p /data; \
    chown "${UID}:${GID}" /data; \
    chmod 0777 /data

COPY --from=builder /opt/venv /opt/venv

# Nothing is written outside SYNC_DIR: no bytecode (the venv is precompiled), no HOME, no tmp.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SYNC_DIR=/data \
    SYNC_LOG_FORMAT=json

USER ${UID}:${GID}
VOLUME ["/data"]
EXPOSE 9464

# /startupz on SYNC_HTTP_PORT, "ready once, then alive": healthy once the bucket is restored
# into the folder, and from then on while the process syncs, even with S3 unreachable (an
# outage must not get the container replaced with unsynced changes). The start period covers
# the restore of a large bucket.
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
    CMD ["s3sync-sidecar", "healthcheck"]

# Exec form: the program is PID 1 and gets SIGTERM itself (it finishes queued uploads).
ENTRYPOINT ["s3sync-sidecar"]
