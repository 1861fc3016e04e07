#!/usr/bin/env bash
# Restarts the server compat-tests/postgres/start.sh DIR started (fast shutdown: open
# connections are cut), on the same port.
set -euo pipefail
dir=${1:?usage: restart.sh DIR}
as_user=()
[ "$(id -u)" = 0 ] && as_user=(runuser -u postgres --)
"${as_user[@]}" "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -m fast -w -t 60 restart >/dev/null
