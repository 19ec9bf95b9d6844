# The Docker-in-Docker sidecar of the sandbox-dind variant: Debian's Docker engine plus the sandbox runtime
# image as a tarball, loaded into the engine's empty storage at every pod start. No image registry is needed:
#
#   deploy/kubernetes/sandbox-dind/build.sh          # = docker save rlvr-runtime:latest + the build below
#
#   docker save rlvr-runtime:latest -o deploy/kubernetes/sandbox-dind/rlvr-runtime.tar
#   DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=rlvr-base:bookworm \
#       -f deploy/kubernetes/sandbox-dind/dind.Dockerfile -t rlvr-dind:latest deploy/kubernetes/sandbox-dind
#
# BASE_IMAGE is any Debian bookworm image with apt sources (rlvr-base:bookworm, made by
# sandboxes/images/base.sh, shares its layers with the runtime and service images on a node).
ARG BASE_IMAGE=rlvr-base:bookworm
FROM ${BASE_IMAGE}

# policy-rc.d keeps the package's scripts from starting an engine inside the build.
RUN set -eu; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io ca-certificates; \
    rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \
    dockerd --version

COPY dind-entrypoint.sh /usr/local/bin/rlvr-dind
COPY rlvr-runtime.tar /opt/rlvr-dind/rlvr-runtime.tar
VOLUME /var/lib/docker
ENTRYPOINT ["/usr/local/bin/rlvr-dind"]
