#!/usr/bin/env bash
# Make this machine able to run the sandboxes: Docker engine, bubblewrap, debootstrap, the runtime image.
#
#   .ci/provision.sh          (as root; non-interactive; idempotent: a second run takes seconds)
#
# Installs docker.io, bubblewrap, debootstrap and docker-compose (Debian's Compose v1) with apt-get when
# missing, starts dockerd when no engine answers (there may be no init system: it is started in the background,
# logging to /var/log/dockerd.log), waits until `docker info` works, builds the Debian base rlvr-base:bookworm
# with debootstrap (sandboxes/images/base.sh; skipped when RLVR_BASE_IMAGE names another base), then the runtime
# image on it with sandboxes/images/build.sh. No image registry is needed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERD_LOG="${RLVR_DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKER_WAIT_S="${RLVR_DOCKER_WAIT_S:-60}"

log() { echo "provision: $*"; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "provision: must run as root (installs packages, starts dockerd)" >&2
        exit 1
    fi
}

install_missing_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)  # the compose stack's test
    if [ "${#missing[@]}" -eq 0 ]; then
        log "docker.io, bubblewrap, debootstrap and docker-compose are installed"
        return
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

docker_answers() { docker info >/dev/null 2>&1; }

start_dockerd() {
    if docker_answers; then
        log "the Docker engine is running"
        return
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    local waited=0
    until docker_answers; do
        if [ "$waited" -ge "$DOCKER_WAIT_S" ]; then
            echo "provision: dockerd did not answer within ${DOCKER_WAIT_S}s; last lines of $DOCKERD_LOG:" >&2
            tail -n 20 "$DOCKERD_LOG" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "dockerd answers after ${waited}s"
}

need_root
install_missing_packages
start_dockerd
# The offline Debian base, always (a no-op when its recipe is unchanged): the compose and monitoring tests build
# their images on it unless RLVR_BASE_IMAGE names another, even where build.sh could use python:3.12-slim.
if [ -z "${RLVR_BASE_IMAGE:-}" ]; then
    "$REPO/sandboxes/images/base.sh" rlvr-base:bookworm
fi
"$REPO/sandboxes/images/build.sh"
