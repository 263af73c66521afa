#!/usr/bin/env bash
# Runs a command with TALOS_GATE_TEST_DATABASE_URL pointing at a PostgreSQL server, for the tests that
# need one (test/storage/postgres.test.ts and the end-to-end tests on PostgreSQL):
#   test/helpers/with-postgres.sh npm test          (npm test calls it itself)
# - TALOS_GATE_TEST_DATABASE_URL already set (your own server, a superuser or a role with CREATEDB):
#   the command runs against it; each test makes and drops its own database there.
# - unset: a throwaway cluster is made in a temp folder with the machine's PostgreSQL binaries (Debian:
#   apt-get install postgresql), listening on 127.0.0.1 on a free port, and removed when the command ends.
# The command's exit status is this script's.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS…]" >&2
  exit 2
fi
if [ -n "${TALOS_GATE_TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

# Debian installs the server outside PATH, one folder per major version; take the newest.
bin="${PG_BINDIR:-}"
if [ -z "$bin" ]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "with-postgres: the tests need PostgreSQL: install it (Debian: apt-get install -y postgresql)," >&2
  echo "  or set TALOS_GATE_TEST_DATABASE_URL=postgres://user:pass@host:port/db to a server of yours" >&2
  echo "  (or PG_BINDIR to the folder holding initdb and pg_ctl)" >&2
  exit 1
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/talos-gate-pg.XXXXXX")"
# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$dir"
  as=(runuser -u postgres --)
fi
port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"

stop() {
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}
# A throwaway cluster: no fsync (a crash loses nothing anyone keeps), the socket in its own folder.
# Durability settings are for the tests' speed only; a real gate's database keeps its defaults.
opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w start >/dev/null || {
  cat "$dir/server.log" >&2
  exit 1
}
export TALOS_GATE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "with-postgres: throwaway PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $TALOS_GATE_TEST_DATABASE_URL" >&2
status=0
"$@" || status=$?
exit "$status"
