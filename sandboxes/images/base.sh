#!/usr/bin/env bash
# Build the sandbox base image from Debian packages alone (no container registry needed).
#
#   sandboxes/images/base.sh [IMAGE_TAG]      default: rlvr-base:bookworm
#
# debootstrap makes a minimal bookworm tree, the language toolchains are installed into it with apt inside a
# chroot (the host has the network; a `docker build` may not), and the tree is `docker import`ed. The image
# carries a label with a hash of its recipe: a second run with the same recipe does nothing.
#
# The base also serves the service image (the top-level Dockerfile builds its virtualenv on it), so it carries
# python3-venv, and it trusts what the host trusts: CA certificates the host added under
# /usr/local/share/ca-certificates (a TLS-inspecting proxy, a private package index) are copied in, so that pip in
# a build on this base reaches the same index the host does.
#
# Environment:
#   RLVR_DEBIAN_MIRROR     Debian mirror (default: the first deb.debian.org-style URI in the host's apt sources)
#   RLVR_IMAGE_PACKAGES    toolchain packages (default below); RLVR_IMAGE_EXTRA_PACKAGES is appended to them
set -euo pipefail

IMAGE="${1:-rlvr-base:bookworm}"
SUITE=bookworm
DEFAULT_PACKAGES="python3 gcc g++ libc6-dev openjdk-17-jdk-headless nodejs golang-go rustc"
# Whatever the toolchains: python3 runs the sandbox runner, python3-venv the service image's build, and
# ca-certificates takes the host's CAs (update-ca-certificates, below).
ALWAYS="python3 python3-venv ca-certificates"
HOST_CA_DIR=/usr/local/share/ca-certificates
PACKAGES="$ALWAYS ${RLVR_IMAGE_PACKAGES:-$DEFAULT_PACKAGES} ${RLVR_IMAGE_EXTRA_PACKAGES:-}"

host_mirror() {
    grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -n 1 || true
}
MIRROR="${RLVR_DEBIAN_MIRROR:-$(host_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
host_cas() { find "$HOST_CA_DIR" -type f -name '*.crt' 2>/dev/null | sort; }
CA_HASH="$(host_cas | xargs -r cat | sha256sum | cut -c1-16)"
RECIPE_HASH="$(printf '%s|%s|%s|%s' "$SUITE" "$PACKAGES" "$(sha256sum "$0" | cut -c1-64)" "$CA_HASH" | sha256sum | cut -c1-16)"

existing_hash() {
    docker image inspect --format '{{ index .Config.Labels "rlvr.recipe" }}' "$IMAGE" 2>/dev/null || true
}

if [ "$(existing_hash)" = "$RECIPE_HASH" ]; then
    echo "base.sh: $IMAGE is up to date (recipe $RECIPE_HASH)"
    exit 0
fi

ROOT="$(mktemp -d /var/tmp/rlvr-base.XXXXXX)"
LOG="$ROOT.log"
cleanup() {
    for mnt in proc sys dev/pts dev; do umount -l "$ROOT/$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
    rm -f "$LOG"
}
trap cleanup EXIT

# apt and dpkg are chatty (warnings about the _apt sandbox user, debconf): show their output only on failure
quiet() {
    if ! "$@" >>"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        echo "base.sh: failed: $*" >&2
        exit 1
    fi
}

echo "base.sh: debootstrap $SUITE from $MIRROR into $ROOT"
quiet debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR"

# apt in the chroot uses the same mirror; no docs, man pages or locales (the image only runs programs).
echo "deb $MIRROR $SUITE main" > "$ROOT/etc/apt/sources.list"
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/rlvr-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/doc/*/copyright
CFG
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
echo "base.sh: installing $PACKAGES"
quiet chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get -q update
# shellcheck disable=SC2086  # PACKAGES is a word list on purpose
quiet chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get -q install -y --no-install-recommends $PACKAGES
if [ -n "$(host_cas)" ]; then
    echo "base.sh: trusting the host's CA certificates: $(host_cas | xargs -r -n1 basename | tr '\n' ' ')"
    mkdir -p "$ROOT$HOST_CA_DIR"
    host_cas | xargs -r -I{} cp {} "$ROOT$HOST_CA_DIR/"
    quiet chroot "$ROOT" update-ca-certificates
fi
quiet chroot "$ROOT" apt-get clean
umount -l "$ROOT/dev" "$ROOT/proc"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/root/.cache

echo "base.sh: importing $IMAGE"
tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL rlvr.recipe=$RECIPE_HASH" \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null
docker image ls "$IMAGE"
