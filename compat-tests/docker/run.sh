#!/usr/bin/env bash
# The container image and docker-compose in a real Docker engine (issue 18): makes the local
# base images (no registry needed), builds docker/Dockerfile from them, and runs
# compat-tests/docker/test_container.py (image, volume, graceful stop, size, bad input, and
# `docker compose up` of docker/docker-compose.yml). SKIPPED, with the reason, when no Docker
# engine answers; QLDB_REQUIRE_DOCKER=1 makes that a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-compat-tests/.venv/bin/python}

if ! why=$(docker info 2>&1 >/dev/null); then
    if [ "${QLDB_REQUIRE_DOCKER:-0}" = 1 ]; then
        echo "FAILED: no Docker engine answers: ${why##*$'\n'}" >&2
        exit 1
    fi
    echo "SKIPPED: no Docker engine answers (${why##*$'\n'})"
    exit 0
fi

docker/make-local-bases.sh
export QLDB_RUST_IMAGE=qldb-local-base/rust:bookworm
export QLDB_RUNTIME_IMAGE=qldb-local-base/debian:bookworm
export QLDB_PYTHON_IMAGE=qldb-local-base/python:bookworm
export QLDB_DOCKER_IMAGE=qldb-local:test

began=$SECONDS
docker build -q -f docker/Dockerfile \
    --build-arg RUST_IMAGE="$QLDB_RUST_IMAGE" --build-arg RUNTIME_IMAGE="$QLDB_RUNTIME_IMAGE" \
    -t "$QLDB_DOCKER_IMAGE" . >/dev/null
echo "built $QLDB_DOCKER_IMAGE in $((SECONDS - began))s"

"$PY" -m pytest -q -s -p no:cacheprovider compat-tests/docker/test_container.py
