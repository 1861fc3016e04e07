#!/usr/bin/env bash
# Runs the community Rust driver `qldb` 3.2.9 (examples/qldb_rust_driver.rs, built by
# `cargo test --release`) unchanged against qldb-local.
#
# That driver cannot be given an endpoint: rusoto resolves its named region to
# https://session.qldb.us-east-1.amazonaws.com. So the run happens in a private mount and
# network namespace (unshare; needs root or user namespaces) where /etc/hosts maps that name
# to 127.0.0.1 and qldb-local serves HTTPS on 127.0.0.1:443 with a certificate for it; the
# driver (rustls-native-certs) trusts the generated CA through SSL_CERT_FILE. Nothing leaves
# the namespace: no real AWS endpoint can be reached from inside it.
#
# Environment: QLDB_LOCAL_BIN (default target/release/qldb-local), QLDB_RUST_DRIVER_BIN
# (default target/release/examples/qldb_rust_driver), PYTHON (a Python with the pinned AWS
# CLI, default compat-tests/.venv/bin/python).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${QLDB_LOCAL_BIN:-$REPO/target/release/qldb-local}
DRIVER=${QLDB_RUST_DRIVER_BIN:-$REPO/target/release/examples/qldb_rust_driver}
PY=${PYTHON_WITH_AWSCLI:-$REPO/compat-tests/.venv/bin/python}
HOST=session.qldb.us-east-1.amazonaws.com

if [ "${1:-}" != "--inside" ]; then
    for f in "$BIN" "$DRIVER" "$PY"; do
        [ -x "$f" ] || { echo "rust-driver: $f is missing (run cargo test --release first)" >&2; exit 1; }
    done
    exec unshare --mount --net --fork "$0" --inside
fi

ip link set lo up
tmp=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    umount /etc/hosts 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "$HOST" > "$tmp/hosts"
mount --bind "$tmp/hosts" /etc/hosts

"$BIN" serve --listen 127.0.0.1:443 --tls --tls-names "$HOST" --data-dir "$tmp/data" \
    > "$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
    "$BIN" health --listen 127.0.0.1:443 > /dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log"; exit 1; }
    sleep 0.1
done

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
    AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# The ledger, through the pinned AWS CLI over HTTPS on the same port.
AWS_CA_BUNDLE="$tmp/data/tls/ca.pem" "$PY" -m awscli qldb create-ledger --name rust-driver \
    --permissions-mode ALLOW_ALL --no-deletion-protection --endpoint-url "https://$HOST" > /dev/null

status=0
SSL_CERT_FILE="$tmp/data/tls/ca.pem" QLDB_LEDGER=rust-driver timeout 300 "$DRIVER" || status=$?
if [ "$status" != 0 ]; then
    echo "rust-driver: the qldb crate's checks failed (exit $status); server log:" >&2
    tail -50 "$tmp/server.log" >&2
fi
exit "$status"
