#!/usr/bin/env bash
# Throwaway PostgreSQL servers for tests: loopback only, trust authentication, superuser
# "tollgate", everything (data, socket, logs) inside one directory that the caller removes.
#   scripts/pgtmp.sh up DIR          initdb DIR, start on a free 127.0.0.1 port, create database
#                                    tollgate_test; prints postgresql://tollgate@127.0.0.1:PORT/tollgate_test
#   scripts/pgtmp.sh start DIR       start again (same port) after a stop
#   scripts/pgtmp.sh stop DIR        fast shutdown (clients are disconnected); no-op when stopped
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (Debian's
# postgresql package creates it) and DIR is handed to that user. PG_BINDIR overrides where
# initdb and pg_ctl are found (default: the newest /usr/lib/postgresql/*/bin).
set -euo pipefail

die() {
  echo "pgtmp: $*" >&2
  exit 1
}

bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then
    echo "$PG_BINDIR"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -z "$d" ] && command -v initdb >/dev/null && d=$(dirname "$(command -v initdb)")
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "initdb not found (apt-get install postgresql, or set PG_BINDIR)"
  echo "$d"
}

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run the server"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_on() { # DIR PORT
  echo "$2" >"$1/port"
  as_server_user "$BIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 -s \
    -o "-p $2 -c listen_addresses=127.0.0.1 -k $1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: pgtmp.sh up|start|stop DIR"
BIN=$(bindir)

case "$cmd" in
up)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_server_user "$BIN/initdb" -D "$dir/data" -U tollgate --auth=trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$dir/initdb.log")"
  started=0
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    if start_on "$dir" "$port"; then
      started=1
      break
    fi
  done
  [ "$started" -eq 1 ] || die "could not start PostgreSQL: $(tail -5 "$dir/server.log" 2>/dev/null)"
  "$BIN/createdb" -h 127.0.0.1 -p "$port" -U tollgate tollgate_test || die "createdb failed"
  echo "postgresql://tollgate@127.0.0.1:$port/tollgate_test"
  ;;
start)
  [ -f "$dir/port" ] || die "$dir has no server (run up first)"
  start_on "$dir" "$(cat "$dir/port")" || die "could not start PostgreSQL: $(tail -5 "$dir/server.log")"
  ;;
stop)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_server_user "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 -s stop >/dev/null || true
  fi
  ;;
*)
  die "usage: pgtmp.sh up|start|stop DIR"
  ;;
esac
