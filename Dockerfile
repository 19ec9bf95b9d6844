# The rlvr service image.
#
#   docker build -t rlvr:latest .                                             # base python:3.12-slim
#   docker build --build-arg BASE_IMAGE=rlvr-base:bookworm -t rlvr:latest .  # no image registry: the Debian base
#                                                                             # that sandboxes/images/base.sh makes
#
# Two stages: the first builds a virtualenv with rlvr[server] (from PyPI, or the index in PIP_INDEX_URL /
# PIP_EXTRA_INDEX_URL for a mirror inside an air gap); the second copies only that virtualenv onto the base. On
# rlvr-base the service image shares every base layer with the sandbox runtime image, so it costs the virtualenv
# alone on disk, and it holds the toolchains that the bubblewrap backend needs when it runs inside the container.
#
# Configuration is only through RLVR_* variables (see the README's settings table). Code sandboxes:
#   - docker backend (default here): mount the host's Docker socket and build the runtime image on that host
#     (docker-compose.yml does both). That socket is root on the host: whoever controls this container controls
#     the host. The entrypoint joins the socket's group and drops to uid 10001 (see deploy/docker-entrypoint.sh).
#   - bubblewrap backend (RLVR_SANDBOX_BACKEND=bubblewrap, --build-arg EXTRA_PACKAGES=bubblewrap, base
#     rlvr-base:bookworm for the toolchains): needs user namespaces, i.e. `--security-opt seccomp=unconfined`
#     (Docker's default profile refuses unshare/clone with new namespaces), `--security-opt systempaths=unconfined`
#     (bwrap mounts a fresh /proc, which Docker's masked /proc paths forbid) and `--security-opt apparmor=unconfined`
#     where AppArmor confines containers; no capabilities and no privileged mode. Unprivileged bwrap has no uid
#     separation: tests that need the judge harness are masked; prefer the docker backend for them.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY pyproject.toml README.md /src/
COPY rlvr /src/rlvr
COPY rewards /src/rewards
COPY service /src/service
COPY sandboxes /src/sandboxes
# pip trusts the system's CA bundle where there is one (Debian's pip vendors its own otherwise), so a base that
# trusts a private index or a TLS-inspecting proxy builds behind it too.
RUN set -eu; \
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi; \
    python3 -m venv /opt/rlvr/venv; \
    /opt/rlvr/venv/bin/pip install --quiet '/src[server]'; \
    /opt/rlvr/venv/bin/rlvr serve --help >/dev/null

FROM ${BASE_IMAGE}
ARG EXTRA_PACKAGES=""
ARG RLVR_UID=10001
RUN set -eu; \
    if [ -n "$EXTRA_PACKAGES" ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $EXTRA_PACKAGES; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid "$RLVR_UID" rlvr; \
    useradd --system --uid "$RLVR_UID" --gid rlvr --home-dir /var/lib/rlvr --create-home \
        --shell /usr/sbin/nologin rlvr
COPY --from=build /opt/rlvr/venv /opt/rlvr/venv
COPY deploy/docker-entrypoint.sh /usr/local/bin/rlvr-entrypoint
ENV PATH=/opt/rlvr/venv/bin:$PATH \
    HOME=/var/lib/rlvr \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RLVR_HOST=0.0.0.0 \
    RLVR_PORT=8000
USER rlvr
WORKDIR /var/lib/rlvr
EXPOSE 8000
# Alive (not ready): /healthz answers as soon as the server runs; readiness (/readyz) is for load balancers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RLVR_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["rlvr-entrypoint"]
CMD ["serve"]
