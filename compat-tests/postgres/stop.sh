#!/usr/bin/env bash
# Stops the server compat-tests/postgres/start.sh DIR started, and removes DIR.
set -uo pipefail
dir=${1:?usage: stop.sh DIR}
[ -d "$dir" ] || exit 0
if [ -f "$dir/bin" ] && [ -d "$dir/data" ]; then
    as_user=()
    [ "$(id -u)" = 0 ] && as_user=(runuser -u postgres --)
    "${as_user[@]}" "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
fi
rm -rf "$dir"
