#!/usr/bin/env bash
# Starts a private PostgreSQL 15 server for the tests and prints its URL on stdout.
#
#   url=$(compat-tests/postgres/start.sh DIR)   # DIR: a new or empty directory
#   compat-tests/postgres/stop.sh DIR
#
# initdb in DIR/data as a non-root user (PostgreSQL refuses to run as root: as root this uses
# Debian's `postgres` user, creating one if missing), listening on a free loopback port and a
# socket in DIR, trust authentication for the superuser `postgres` plus a password user
# `qldb` (password `qldb`) that owns the database `qldb`. With openssl on the machine, TLS
# is on (clients choose it by sslmode): a test CA in DIR/ca.pem signs the server's
# certificate, which names `localhost` only (so that verify-full to 127.0.0.1 fails and
# verify-ca passes). As root with apt-get, installs
# Debian's postgresql-15 when it is missing. Everything it prints besides the URL goes to
# stderr; its log is DIR/postgres.log.
set -euo pipefail
dir=${1:?usage: start.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

find_bin() {
    for v in 15 16 17 14; do
        if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then
            echo "/usr/lib/postgresql/$v/bin"
            return 0
        fi
    done
    command -v initdb >/dev/null && dirname "$(command -v initdb)" && return 0
    return 1
}
bin=$(find_bin || true)
if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's postgresql-15" >&2
    apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >&2
    bin=$(find_bin || true)
fi
[ -n "$bin" ] || { echo "PostgreSQL's initdb was not found (Debian: apt-get install postgresql-15)" >&2; exit 1; }

# As root, run the server as an unprivileged user.
as_user=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$dir"
    as_user=(runuser -u postgres --)
fi
run() { "${as_user[@]}" "$@"; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ ! -s "$dir/data/PG_VERSION" ]; then
    run "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        run "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # Loopback connections as the superuser need no password (the tests' admin work); every
    # other user gives one.
    {
        echo "host all postgres 127.0.0.1/32 trust"
        cat "$dir/data/pg_hba.conf"
    } >"$dir/pg_hba.conf.new"
    run cp "$dir/pg_hba.conf.new" "$dir/data/pg_hba.conf"
    rm -f "$dir/pg_hba.conf.new"
    if command -v openssl >/dev/null; then
        (
            cd "$dir"
            ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
            openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 3650 \
                -subj "/CN=qldb-local test CA" -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
            openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
            printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out server.crt -days 3650 -extfile server.ext 2>/dev/null
            chmod 600 server.key
            [ "$(id -u)" = 0 ] && chown postgres server.key server.crt
            run cp -p server.crt server.key data/
            rm -f server.csr server.ext server.key server.crt ca.key ca.srl
        )
    fi
fi
ssl=()
[ -s "$dir/data/server.crt" ] && ssl=(-c ssl=on)
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on ${ssl[*]}" start >&2 ||
    { cat "$dir/postgres.log" >&2; exit 1; }
echo "$port" >"$dir/port"
echo "$bin" >"$dir/bin"
"$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qldb') THEN
    CREATE ROLE qldb LOGIN PASSWORD 'qldb';
  END IF;
END $$;
SELECT 'CREATE DATABASE qldb OWNER qldb' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'qldb')\gexec
SQL
echo "postgres://qldb:qldb@127.0.0.1:$port/qldb"
