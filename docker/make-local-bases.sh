#!/usr/bin/env bash
# Makes the base images docker/Dockerfile and docker/tests.Dockerfile build from, on a machine
# with a Docker engine but no container registry (no image can be pulled):
#
#   qldb-local-base/debian:bookworm   Debian 12 (debootstrap --variant=minbase), the runtime base
#   qldb-local-base/rust:bookworm     that + gcc, libc6-dev and this machine's Rust toolchain
#   qldb-local-base/python:bookworm   that Debian + python3 and python3-venv, for the test container
#
# Each image carries a label with the hash of this script (and, for the Rust base, the
# toolchain's version), and is kept between runs: it is rebuilt only when missing or stale.
# Needs root (debootstrap; installed from Debian's packages if missing) and access to a
# Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian).
#
# Then:  docker build -f docker/Dockerfile \
#          --build-arg RUST_IMAGE=qldb-local-base/rust:bookworm \
#          --build-arg RUNTIME_IMAGE=qldb-local-base/debian:bookworm -t qldb-local .
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
DEBIAN_IMAGE=qldb-local-base/debian:$SUITE
RUST_IMAGE=qldb-local-base/rust:$SUITE
PYTHON_IMAGE=qldb-local-base/python:$SUITE
recipe=$(sha256sum "$0" | cut -c1-16)
rust_version=$(rustc --version)
# The machine's own trust anchors (a TLS-inspecting egress proxy's CA, say) go into the
# images that download (cargo, pip), so that they reach crates.io and PyPI as the machine does.
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
cas=$(cat "$EXTRA_CA_DIR"/*.crt 2>/dev/null | sha256sum | cut -c1-16)

# The label an existing image carries, or nothing.
label_of() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
fresh() { [ "$(label_of "$1" qldb-local.recipe)" = "$2" ]; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! fresh "$DEBIAN_IMAGE" "$recipe"; then
    echo "making $DEBIAN_IMAGE with debootstrap ($MIRROR)"
    if ! command -v debootstrap >/dev/null; then
        apt-get install -y -qq debootstrap >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    fi
    debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        exit 1
    }
    # What a slim image leaves out: package caches and lists, documentation, locales.
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
        "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/info/*
    find "$work/rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
    echo "deb $MIRROR $SUITE main" >"$work/rootfs/etc/apt/sources.list"
    tar -C "$work/rootfs" -c . | docker import \
        --change "LABEL qldb-local.recipe=$recipe" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$work/rootfs"
fi

# Copies the machine's extra CA certificates into a build context.
extra_cas() { mkdir -p "$1/extra-ca"; cp "$EXTRA_CA_DIR"/*.crt "$1/extra-ca/" 2>/dev/null || true; }

rust_label="$recipe $cas $rust_version"
if ! fresh "$RUST_IMAGE" "$rust_label"; then
    echo "making $RUST_IMAGE with $rust_version from this machine"
    sysroot=$(rustc --print sysroot)
    mkdir -p "$work/rust/toolchain"
    # The compiler and Cargo with the host target's standard library; no documentation.
    cp -a "$sysroot/bin" "$sysroot/lib" "$work/rust/toolchain/"
    cargo_bin=$(command -v cargo)
    [ -x "$work/rust/toolchain/bin/cargo" ] || cp -L "$cargo_bin" "$work/rust/toolchain/bin/"
    extra_cas "$work/rust"
    cat >"$work/rust/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null \\
    && rm -rf /var/lib/apt/lists/*
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
COPY toolchain /usr/local/rust
ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    CARGO_HOME=/usr/local/cargo
LABEL qldb-local.recipe="$rust_label"
EOF
    docker build -q -t "$RUST_IMAGE" "$work/rust" >/dev/null
    docker run --rm "$RUST_IMAGE" rustc --version
fi

if ! fresh "$PYTHON_IMAGE" "$recipe $cas"; then
    echo "making $PYTHON_IMAGE"
    mkdir -p "$work/python"
    extra_cas "$work/python"
    cat >"$work/python/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \\
    && rm -rf /var/lib/apt/lists/*
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
# pip verifies with its own bundle unless told: use the system's, which has the extra CAs.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
LABEL qldb-local.recipe="$recipe $cas"
EOF
    docker build -q -t "$PYTHON_IMAGE" "$work/python" >/dev/null
    docker run --rm "$PYTHON_IMAGE" python3 --version
fi
echo "local bases ready: $DEBIAN_IMAGE $RUST_IMAGE $PYTHON_IMAGE"
