#!/usr/bin/env bash
# Build the sandbox runtime image (default tag rlvr-runtime:latest). Idempotent: a second run takes seconds.
#
#   sandboxes/images/build.sh [IMAGE_TAG]
#
# Base image, in order of preference:
#   1. $RLVR_BASE_IMAGE when set (e.g. python:3.12-slim on a machine with a registry);
#   2. rlvr-base:bookworm when it is already built (Debian packages via debootstrap, see base.sh);
#   3. python:3.12-slim when it is present locally or can be pulled within RLVR_PULL_TIMEOUT_S (default 20);
#   4. otherwise rlvr-base:bookworm is built now with base.sh (needs root, debootstrap and a Debian mirror).
#
# RLVR_IMAGE_PACKAGES overrides the toolchain packages (default in base.sh and runtime.Dockerfile: python3 gcc
# g++ libc6-dev openjdk-17-jdk-headless nodejs golang-go rustc; without golang-go and rustc the image is about
# 0.8 GB instead of 1.65 GB). Languages whose toolchain is missing are refused by the backend, not failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${1:-rlvr-runtime:latest}"
LOCAL_BASE="rlvr-base:bookworm"
PUBLIC_BASE="python:3.12-slim"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

choose_base() {
    if [ -n "${RLVR_BASE_IMAGE:-}" ]; then
        echo "$RLVR_BASE_IMAGE"
    elif have_image "$LOCAL_BASE"; then
        echo "$LOCAL_BASE"
    elif have_image "$PUBLIC_BASE" || timeout "${RLVR_PULL_TIMEOUT_S:-20}" docker pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        echo "$PUBLIC_BASE"
    else
        echo "build.sh: $PUBLIC_BASE is not available; building $LOCAL_BASE from Debian packages" >&2
        "$HERE/base.sh" "$LOCAL_BASE" >&2
        echo "$LOCAL_BASE"
    fi
}

BASE="$(choose_base)"
if [ "$BASE" = "$LOCAL_BASE" ]; then
    "$HERE/base.sh" "$LOCAL_BASE"  # a no-op when its recipe is unchanged
fi
echo "build.sh: building $IMAGE from $BASE"
# The classic builder needs no buildx plugin (Debian's docker.io has none); its deprecation notice is noise.
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE")
if [ -n "${RLVR_IMAGE_PACKAGES:-}" ]; then
    BUILD_ARGS+=(--build-arg "TOOLCHAINS=$RLVR_IMAGE_PACKAGES")
fi
if ! DOCKER_BUILDKIT=0 docker build --quiet "${BUILD_ARGS[@]}" -t "$IMAGE" \
    -f "$HERE/runtime.Dockerfile" "$HERE" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    exit 1
fi
docker image ls "$IMAGE"
