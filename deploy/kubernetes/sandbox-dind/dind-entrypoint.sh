#!/bin/sh
# The Docker-in-Docker sidecar: a Docker engine for the service's sandbox containers, reachable only through a
# unix socket on a volume shared with the service container, with the sandbox runtime image loaded from the
# tarball baked into this image (no registry to pull it from). Arguments are passed on to dockerd (the
# container's `args`: --storage-driver=..., --debug).
#
# Environment:
#   RLVR_DIND_SOCKET     the socket (default /run/dind/docker.sock)
#   RLVR_DIND_SOCKET_GID the socket's group: the service's gid (default 10001), mode 0660
#   RLVR_DIND_IMAGE      the runtime image's tag (default rlvr-runtime:latest)
#   RLVR_DIND_TARBALL    `docker save` of it (default /opt/rlvr-dind/rlvr-runtime.tar)
set -eu

SOCKET="${RLVR_DIND_SOCKET:-/run/dind/docker.sock}"
SOCKET_GID="${RLVR_DIND_SOCKET_GID:-10001}"
IMAGE="${RLVR_DIND_IMAGE:-rlvr-runtime:latest}"
TARBALL="${RLVR_DIND_TARBALL:-/opt/rlvr-dind/rlvr-runtime.tar}"
export DOCKER_HOST="unix://$SOCKET"

log() { echo "rlvr-dind: $*" >&2; }

# cgroup v2: a process may not sit in a cgroup whose controllers are handed to children ("no internal
# processes"), so move ours (this shell, anything the runtime started) into a leaf first, then enable every
# controller for the engine's container cgroups.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/rlvr-dind
    while read -r pid; do
        echo "$pid" > /sys/fs/cgroup/rlvr-dind/cgroup.procs 2>/dev/null || true
    done < /sys/fs/cgroup/cgroup.procs
    controllers="$(sed -e 's/^/+/' -e 's/ / +/g' /sys/fs/cgroup/cgroup.controllers)"
    if [ -n "$controllers" ]; then
        echo "$controllers" > /sys/fs/cgroup/cgroup.subtree_control
    fi
fi

mkdir -p "$(dirname "$SOCKET")"
rm -f "$SOCKET"
# No networks at all: sandbox containers run with network_mode none, so the engine needs no bridge, no
# iptables rules and no userland proxy (which also spares the node's netfilter modules).
dockerd \
    --host="unix://$SOCKET" \
    --group="$SOCKET_GID" \
    --data-root=/var/lib/docker \
    --bridge=none \
    --iptables=false \
    --ip-masq=false \
    --userland-proxy=false \
    "$@" &
DOCKERD=$!
trap 'kill -TERM "$DOCKERD" 2>/dev/null || true' TERM INT

tries=0
until docker version >/dev/null 2>&1; do
    if ! kill -0 "$DOCKERD" 2>/dev/null; then
        log "dockerd exited during start"
        wait "$DOCKERD" || exit $?
        exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ]; then
        log "dockerd did not answer within 60 s"
        exit 1
    fi
    sleep 0.5
done
# The engine makes its socket root:<group> 0660; say so again in case the group was given by a name it
# could not resolve.
chgrp "$SOCKET_GID" "$SOCKET"
chmod 0660 "$SOCKET"
log "engine up on $SOCKET (group $SOCKET_GID)"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE is present"
elif [ -f "$TARBALL" ]; then
    log "loading $IMAGE from $TARBALL"
    docker load --input "$TARBALL" >&2
    docker image inspect "$IMAGE" >/dev/null || { log "$TARBALL does not hold $IMAGE"; exit 1; }
else
    log "no $IMAGE and no $TARBALL: the service will report no sandbox"
fi

# The probes and the service use the engine from here on. A TERM from the kubelet reaches it through the trap
# and interrupts `wait`; then wait again for the engine to finish stopping, and exit with its status.
status=0
wait "$DOCKERD" || status=$?
if kill -0 "$DOCKERD" 2>/dev/null; then
    status=0
    wait "$DOCKERD" || status=$?
fi
exit "$status"
