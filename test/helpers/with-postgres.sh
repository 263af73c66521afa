#!/usr/bin/env bash
# Runs a command with TEST_POSTGRES_URL pointing at a PostgreSQL server, for the tests that
# need one (test/storage/postgres.test.ts and the end-to-end tests on PostgreSQL):
#   test/helpers/with-postgres.sh npm test          (npm test calls it itself)
# - TEST_POSTGRES_URL already set (your own server, a superuser or a role with CREATEDB):
#   the command runs against it; each test makes and drops its own database there. Set
#   TEST_POSTGRES_CA to the CA file of the server's TLS certificate too (for 127.0.0.1 or
#   the URL's host): the TLS tests connect with sslmode=verify-full.
# - unset: a throwaway cluster is made in a temp folder with the machine's PostgreSQL binaries (Debian:
#   apt-get install postgresql), listening on 127.0.0.1 on a free port with TLS from a CA of its own,
#   and removed when the command ends.
# The command's exit status is this script's.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS…]" >&2
  exit 2
fi
if [ -n "${TEST_POSTGRES_URL:-}" ]; then
  exec "$@"
fi

# Debian installs the server outside PATH, one folder per major version; take the newest.
bin="${PG_BINDIR:-}"
if [ -z "$bin" ]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "with-postgres: the tests need PostgreSQL: install it (Debian: apt-get install -y postgresql)," >&2
  echo "  or set TEST_POSTGRES_URL=postgres://user:pass@host:port/db to a server of yours" >&2
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
# interrupted (Ctrl-C, a CI timeout): the cluster is stopped and removed all the same
trap 'exit 130' INT
trap 'exit 143' TERM

"${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}
# TLS too, so sslmode=verify-full is tested: a CA of its own and a certificate for 127.0.0.1 and
# localhost (openssl, which the suite needs anyway); the key belongs to whoever runs the server.
mkdir "$dir/tls"
(
  cd "$dir/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 \
    -subj /CN=talos-gate-test-database-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt 2>/dev/null
  chmod 0600 server.key
)
[ ${#as[@]} -gt 0 ] && chown -R postgres: "$dir/tls"
# A throwaway cluster: no fsync (a crash loses nothing anyone keeps), the socket in its own folder.
# Durability settings are for the tests' speed only; a real gate's database keeps its defaults.
opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
opts="$opts -c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w start >/dev/null || {
  cat "$dir/server.log" >&2
  exit 1
}
export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
export TEST_POSTGRES_CA="$dir/tls/ca.crt"
echo "with-postgres: throwaway PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $TEST_POSTGRES_URL" >&2
status=0
"$@" || status=$?
exit "$status"
