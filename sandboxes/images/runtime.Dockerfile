# The sandbox runtime: language toolchains and a non-root user, nothing else.
#
# The resident runner (sandboxes/runner.py) is NOT in the image: the docker backend bind-mounts it read-only at
# container start, so changing it never needs a rebuild. Build with sandboxes/images/build.sh; with no image
# registry it passes --build-arg BASE_IMAGE=rlvr-base:bookworm (made by base.sh from Debian packages), which
# already holds every toolchain, so the install step below then needs no network.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ARG TOOLCHAINS="python3 gcc g++ libc6-dev openjdk-17-jdk-headless nodejs golang-go rustc"
ARG SANDBOX_UID=10001

# Install only what the base lacks (nothing, on rlvr-base).
RUN set -eu; \
    missing=""; \
    for pkg in $TOOLCHAINS; do \
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi

# Precompiled headers for the two headers C++ solutions start with, built with the flags of the cpp entry in
# sandboxes/languages.py (-std=c++17 -O2): its compile command searches /opt/rlvr-pch first, and g++ uses a .gch
# only when the flags match and the header is the program's first include, falling back to the real header
# otherwise. A small program then compiles in ~0.15 s instead of ~0.55 s. Best effort: no PCH, no harm.
RUN set -u; \
    version="$(g++ -dumpversion)"; \
    stdcpp="$(find /usr/include -path "*/c++/$version/bits/stdc++.h" | head -n 1)"; \
    mkdir -p /opt/rlvr-pch/bits; \
    g++ -std=c++17 -O2 -x c++-header "/usr/include/c++/$version/iostream" -o /opt/rlvr-pch/iostream.gch \
        2>/dev/null || echo "no precompiled <iostream>"; \
    g++ -std=c++17 -O2 -x c++-header "$stdcpp" -o /opt/rlvr-pch/bits/stdc++.h.gch \
        2>/dev/null || echo "no precompiled <bits/stdc++.h>"; \
    chmod -R a+rX /opt/rlvr-pch

# The default user for a manual `docker run`. The docker backend starts its resident runner as root with six
# capabilities, and the runner runs each slot's harnesses and programs as two uids of that slot's own (see
# sandboxes/docker.py and sandboxes/_uids.py), so that RLIMIT_NPROC budgets are not shared between containers.
RUN groupadd --gid "$SANDBOX_UID" sandbox \
    && useradd --uid "$SANDBOX_UID" --gid "$SANDBOX_UID" --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin sandbox \
    && mkdir -p /opt/rlvr /work \
    && chmod 0755 /opt/rlvr && chmod 1777 /work

# The root file system is mounted read-only at run time; /work and /tmp are size-capped tmpfs mounts.
ENV HOME=/tmp LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
LABEL rlvr.runtime="1"
USER ${SANDBOX_UID}:${SANDBOX_UID}
WORKDIR /work
CMD ["python3", "/opt/rlvr/runner.py", "/work"]
