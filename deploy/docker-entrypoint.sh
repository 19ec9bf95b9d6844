#!/bin/sh
# The service image's entrypoint: `rlvr serve`, as the unprivileged user rlvr (uid 10001) in every case.
#
# The image's default user is rlvr, and then this only execs. The one reason to start it as root is a Docker
# socket mounted into the container for the docker sandbox backend: the socket belongs to the host's docker
# group, whose gid differs from host to host, so as root this script reads the socket's group, drops to rlvr with
# that group (and no capabilities) and execs the service. Nothing else runs as root.
set -eu

SOCKET="${RLVR_DOCKER_SOCKET:-/var/run/docker.sock}"

if [ "$(id -u)" != "0" ]; then
    exec rlvr "$@"
fi
groups="rlvr"
if [ -S "$SOCKET" ]; then
    groups="rlvr,$(stat -c %g "$SOCKET")"
fi
exec setpriv --reuid=rlvr --regid=rlvr --groups="$groups" --inh-caps=-all --bounding-set=-all -- rlvr "$@"
