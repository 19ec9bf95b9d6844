#!/usr/bin/env bash
# Build the sidecar image of the sandbox-dind variant: rlvr-dind:latest, with the runtime image inside.
#
#   deploy/kubernetes/sandbox-dind/build.sh [TAG]       default tag: rlvr-dind:latest
#
# Needs the runtime image on this engine (`make sandboxes`, or sandboxes/images/build.sh) and a Debian base
# (RLVR_BASE_IMAGE, default rlvr-base:bookworm, made by sandboxes/images/base.sh). Then make the image
# available to the nodes: push it to the cluster's registry, or `docker save rlvr-dind:latest` and import it on
# every node (`ctr -n k8s.io images import`, `kind load image-archive`, ...).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
TAG="${1:-rlvr-dind:latest}"
RUNTIME_IMAGE="${RLVR_SANDBOX_IMAGE:-rlvr-runtime:latest}"
BASE_IMAGE="${RLVR_BASE_IMAGE:-rlvr-base:bookworm}"
TARBALL="$HERE/rlvr-runtime.tar"

trap 'rm -f "$TARBALL"' EXIT
echo "build.sh: saving $RUNTIME_IMAGE"
docker save "$RUNTIME_IMAGE" -o "$TARBALL"
echo "build.sh: building $TAG on $BASE_IMAGE"
DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE="$BASE_IMAGE" -f "$HERE/dind.Dockerfile" -t "$TAG" "$HERE"
