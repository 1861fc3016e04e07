#!/usr/bin/env bash
# The single test command of qldb-local (README "Run every test"; .ci/run calls exactly this).
#
# Needs only the Rust toolchain, python3 (3.9+), node (18+) with npm, and network access to
# crates.io, PyPI and the npm registry; as root with apt-get it installs Debian's chromium
# and chromium-driver for the console test when they are missing.
# Builds the Rust code once, in the release profile that `cargo test --release` and the
# compat suites share, then installs the pinned clients into compat-tests/.venv (reused
# while compat-tests/python/requirements.txt is unchanged) and runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
started=$SECONDS
step() { printf '\n==> %s  (+%ss)\n' "$*" "$((SECONDS - started))"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings

step "PostgreSQL 15 for the PostgreSQL backend's tests (initdb as a non-root user, loopback, stopped at exit)"
# compat-tests/postgres/start.sh installs Debian's postgresql-15 when it is missing and this
# runs as root with apt-get. The Rust tests and the Python suites' PostgreSQL pass share it.
PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/qldb-ci-pg.XXXXXX")
trap 'compat-tests/postgres/stop.sh "$PG_DIR"' EXIT
compat-tests/postgres/start.sh "$PG_DIR" >/dev/null
export QLDB_TEST_POSTGRES_PORT QLDB_TEST_POSTGRES_BIN QLDB_TEST_POSTGRES_CA
QLDB_TEST_POSTGRES_PORT=$(cat "$PG_DIR/port")
QLDB_TEST_POSTGRES_BIN=$(cat "$PG_DIR/bin")
QLDB_TEST_POSTGRES_CA="$PG_DIR/ca.pem" # TLS is on when openssl made it
echo "PostgreSQL on 127.0.0.1:$QLDB_TEST_POSTGRES_PORT"

step "cargo test --release  (also builds target/release/qldb-local and the examples for the compat suites)"
cargo test --release

step "the session-layer and PartiQL suites again with their ledgers on PostgreSQL (QLDB_TEST_STORAGE=postgres)"
QLDB_TEST_STORAGE=postgres cargo test --release --test golden --test partiql_select \
    --test lazy_pages --test hash_join --test dml_streaming --test index_access_paths \
    --test scan_pages --test session_journal --test quick_paths
export QLDB_LOCAL_BIN="$PWD/target/release/qldb-local"

# A venv keyed by the hash of its requirements file: rebuilt only when the pins change.
make_venv() { # dir requirements-file
    local dir=$1 req=$2 want have=""
    want=$(sha256sum "$req" | cut -d' ' -f1)
    [ -f "$dir/.requirements.sha256" ] && have=$(cat "$dir/.requirements.sha256")
    if [ "$want" != "$have" ] || [ ! -x "$dir/bin/python" ]; then
        "$PYTHON" -m venv --clear "$dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
        echo "$want" > "$dir/.requirements.sha256"
    fi
}

step "moto server (S3 and Kinesis endpoint for the export and stream tests)"
make_venv compat-tests/.venv-moto compat-tests/moto/requirements.txt
export MOTO_SERVER_BIN="$PWD/compat-tests/.venv-moto/bin/moto_server"

step "pinned Python clients (boto3/botocore 1.40.60, awscli 1.42.60, pyqldb 3.2.4)"
make_venv compat-tests/.venv compat-tests/python/requirements.txt
compat-tests/.venv/bin/python -m pytest -q -p no:cacheprovider compat-tests/python

step "the same Python suites with every server on PostgreSQL (--storage; tests of SQLite files skip)"
QLDB_TEST_STORAGE=postgres compat-tests/.venv/bin/python -m pytest -q -p no:cacheprovider compat-tests/python

step "web console in headless Chromium (Debian's chromium and chromedriver, driven by Selenium)"
# Installs Debian's chromium and chromium-driver when they are missing and this runs as root
# with apt-get (CI). Elsewhere, without them, the suite is reported SKIPPED, loudly, unless
# QLDB_REQUIRE_CONSOLE=1 makes that a failure. Screenshots go to target/console-screenshots/.
have_browser() {
    { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } &&
        command -v chromedriver >/dev/null
}
if ! have_browser && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver ||
        echo "could not install chromium and chromium-driver with apt-get" >&2
fi
if have_browser; then
    make_venv compat-tests/.venv-console compat-tests/console/requirements.txt
    compat-tests/.venv-console/bin/python -m pytest -q -p no:cacheprovider compat-tests/console
elif [ "${QLDB_REQUIRE_CONSOLE:-0}" = 1 ]; then
    echo "FAILED: the console test needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver) and QLDB_REQUIRE_CONSOLE=1" >&2
    exit 1
else
    echo "SKIPPED: the console test needs chromium and chromedriver (Debian: apt-get install"
    echo "         chromium chromium-driver, which this command does itself when run as root)."
fi

step "Rust driver qldb 3.2.9 (rusoto) unchanged, in a private network namespace over HTTPS"
# Built by cargo test above (examples/qldb_rust_driver.rs); needs unshare (root or user
# namespaces) and iproute2's ip.
compat-tests/rust-driver/run.sh

step "Node.js driver (amazon-qldb-driver-nodejs 3.1.0, @aws-sdk/client-qldb* 3.918.0)"
# npm ci installs exactly package-lock.json; node_modules is reused while the lock is unchanged.
# Where the npm registry cannot be reached at all (some CI machines reach only crates.io and
# PyPI) the suite is reported SKIPPED, loudly, unless QLDB_REQUIRE_NODE=1 makes that a failure.
# npm 10 can exit 0 after "Exit handler never called!" with half a tree, so the install is
# accepted only when every pinned package loads.
(
    cd compat-tests/node
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    have=$(cat node_modules/.lock.sha256 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        registry=$(npm config get registry)
        if ! node -e '
            const req = require("https").get(process.argv[1], (res) => process.exit(res.statusCode < 500 ? 0 : 1));
            req.on("error", () => process.exit(1));
            req.setTimeout(20000, () => process.exit(1));' "$registry"; then
            if [ "${QLDB_REQUIRE_NODE:-0}" = 1 ]; then
                echo "FAILED: the npm registry ($registry) cannot be reached and QLDB_REQUIRE_NODE=1" >&2
                exit 1
            fi
            echo "SKIPPED: the npm registry ($registry) cannot be reached from this machine;"
            echo "         the Node.js driver suite needs it to install the pinned packages."
            exit 0
        fi
        rm -rf node_modules
        npm ci --no-audit --no-fund --loglevel=error
        node --input-type=module -e '
            for (const m of ["@aws-sdk/client-qldb", "@aws-sdk/client-qldb-session",
                             "amazon-qldb-driver-nodejs", "ion-js", "jsbi"]) await import(m);' || {
            echo "FAILED: npm ci left an incomplete node_modules (see its log above)" >&2
            exit 1
        }
        echo "$want" > node_modules/.lock.sha256
    fi
    npm test
)

step "newest boto3 and AWS CLI v1 with AWS_DATA_PATH=api-models"
# Always the newest releases from PyPI: this suite proves api-models/ revives them.
LATEST=compat-tests/.venv-latest
[ -x "$LATEST/bin/python" ] || "$PYTHON" -m venv "$LATEST"
"$LATEST/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade boto3 awscli pytest
"$LATEST/bin/python" -m pytest -q -p no:cacheprovider compat-tests/latest-sdk

step "container image and docker-compose in the Docker engine (SKIPPED without one)"
# Makes local base images (debootstrap, this machine's Rust toolchain; kept between runs),
# builds docker/Dockerfile from them and runs compat-tests/docker/test_container.py.
PY=compat-tests/.venv/bin/python compat-tests/docker/run.sh

step "all suites passed in $((SECONDS - started))s"
