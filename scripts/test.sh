#!/usr/bin/env bash
# Runs every test against the sanitizer build in build-asan/ (run by `make test`, which builds
# it first):
#   0. the style check (clang-format --dry-run on every C file)
#   1. unit and adapter tests (Criterion, via ctest)
#   2. the e2e SDK dependencies (npm ci, only when needed)
#   3. integration and e2e tests (node --test) against build-asan/tollgate, with ASan's leak
#      check on at exit (the tests stop tollgate with SIGTERM and expect exit 0)
# and ends with one summary line "N passed, N failed". Exits non-zero if any step failed.
# Arguments (optional): node test files or directories to run instead of tests/integration/ and
# tests/e2e/, e.g. `scripts/test.sh tests/integration/keys.test.mjs`; SKIP_UNIT=1 skips ctest.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD_DIR=${BUILD_DIR:-build-asan}
export TOLLGATE_BIN=${TOLLGATE_BIN:-$BUILD_DIR/tollgate}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
if [ -f tests/lsan.supp ] && [ -z "${LSAN_OPTIONS:-}" ]; then
  export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
fi

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-test.XXXXXX")
passed=0
failed=0
status=0

note() { printf '\n=== %s ===\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# Services: a throwaway PostgreSQL (scripts/pgtmp.sh) and Redis on loopback ports, in one temp
# dir, for every test step. The tests read TEST_DATABASE_URL and TEST_REDIS_URL (unset when a
# service could not start: the step is counted as failed and tests that need it skip).
# stop_services runs on every exit path (trap) and may run twice.
SVC_DIR=""
REDIS_PIDFILE=""
start_services() {
  SVC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-svc.XXXXXX")
  chmod 755 "$SVC_DIR"
  local url
  if url=$(scripts/pgtmp.sh up "$SVC_DIR/pg"); then
    export TEST_DATABASE_URL=$url
    echo "postgres: $TEST_DATABASE_URL"
  else
    echo "test.sh: could not start PostgreSQL" >&2
    failed=$((failed + 1))
    status=1
  fi
  local port i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue # in use
    REDIS_PIDFILE="$SVC_DIR/redis.pid"
    if redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --pidfile "$REDIS_PIDFILE" --dir "$SVC_DIR" --logfile "$SVC_DIR/redis.log" >/dev/null 2>&1; then
      for i in $(seq 1 100); do # up to 5 s until it answers
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
        sleep 0.05
      done
      if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
        export TEST_REDIS_URL="redis://127.0.0.1:$port"
        echo "redis: $TEST_REDIS_URL"
        return 0
      fi
      stop_redis
    fi
  done
  echo "test.sh: could not start redis-server" >&2
  failed=$((failed + 1))
  status=1
}
stop_redis() {
  if [ -n "$REDIS_PIDFILE" ] && [ -f "$REDIS_PIDFILE" ]; then
    local pid i
    pid=$(cat "$REDIS_PIDFILE")
    kill "$pid" 2>/dev/null
    for i in $(seq 1 100); do # up to 5 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    rm -f "$REDIS_PIDFILE"
  fi
  REDIS_PIDFILE=""
}
stop_services() {
  [ -n "$SVC_DIR" ] || return 0
  stop_redis
  [ -d "$SVC_DIR/pg" ] && scripts/pgtmp.sh stop "$SVC_DIR/pg"
  rm -rf "$SVC_DIR"
  SVC_DIR=""
  unset TEST_DATABASE_URL TEST_REDIS_URL
}
cleanup() {
  stop_services
  rm -rf "$LOG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
note "services (PostgreSQL, Redis on loopback)"
start_services

# ---------------------------------------------------------------------------------------------
# 0. style: every C file as clang-format (.clang-format in the repo) writes it; one test
note "style (clang-format --dry-run -Werror)"
if [ -n "${SKIP_UNIT:-}" ]; then
  echo "skipped (SKIP_UNIT)"
elif ! command -v clang-format >/dev/null; then
  echo "test.sh: clang-format is not installed (scripts/deps.sh test installs it)" >&2
  failed=$((failed + 1))
  status=1
elif unformatted=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -o '^[^:]*\.[ch]:' | sort -u) &&
  [ -n "$unformatted" ]; then
  echo "not formatted (run make format): $unformatted" | tr '\n' ' '
  echo
  failed=$((failed + 1))
  status=1
else
  echo "ok"
  passed=$((passed + 1))
fi

# ---------------------------------------------------------------------------------------------
# 1. ctest
note "unit tests (ctest --test-dir $BUILD_DIR)"
if [ -n "${SKIP_UNIT:-}" ]; then
  echo "skipped (SKIP_UNIT)"
elif [ ! -d "$BUILD_DIR" ]; then
  echo "test.sh: $BUILD_DIR/ does not exist; build it first (make build-asan/tollgate)" >&2
  failed=$((failed + 1))
  status=1
else
  ctest --test-dir "$BUILD_DIR" --output-on-failure 2>&1 | tee "$LOG_DIR/ctest.log"
  rc=${PIPESTATUS[0]}
  # "100% tests passed, 0 tests failed out of 12"
  line=$(grep -E '[0-9]+ tests failed out of [0-9]+' "$LOG_DIR/ctest.log" | tail -1)
  if [ -n "$line" ]; then
    f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
    passed=$((passed + t - f))
    failed=$((failed + f))
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1)) # ctest itself failed before running tests
  fi
  [ "$rc" -ne 0 ] && status=1
fi

# ---------------------------------------------------------------------------------------------
# 2. npm ci for the e2e SDK tests, only when node_modules is missing or the lock file changed
note "e2e dependencies"
E2E=tests/e2e
stamp="$E2E/node_modules/.tollgate-lock.sha256"
want=$(sha256sum "$E2E/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$E2E/node_modules" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if npm ci --prefix "$E2E" --no-audit --no-fund; then
    echo "$want" >"$stamp"
  else
    echo "test.sh: npm ci failed" >&2
    failed=$((failed + 1))
    status=1
  fi
else
  echo "up to date"
fi

# ---------------------------------------------------------------------------------------------
# 3. integration + e2e against the real binary
note "integration and e2e tests (node --test, TOLLGATE_BIN=$TOLLGATE_BIN)"
if [ $# -gt 0 ]; then NODE_TESTS=("$@"); else NODE_TESTS=(tests/integration/ tests/e2e/); fi
node --test --test-concurrency=1 --test-reporter=tap "${NODE_TESTS[@]}" 2>&1 | tee "$LOG_DIR/node.log"
rc=${PIPESTATUS[0]}
np=$(grep -E '^# pass [0-9]+' "$LOG_DIR/node.log" | tail -1 | awk '{print $3}')
nf=$(grep -E '^# fail [0-9]+' "$LOG_DIR/node.log" | tail -1 | awk '{print $3}')
nc=$(grep -E '^# cancelled [0-9]+' "$LOG_DIR/node.log" | tail -1 | awk '{print $3}') # counted as failed
if [ -z "$np" ] && [ -z "$nf" ]; then
  failed=$((failed + 1)) # the runner died before its summary
else
  passed=$((passed + ${np:-0}))
  failed=$((failed + ${nf:-0} + ${nc:-0}))
fi
[ "$rc" -ne 0 ] && status=1
stop_services

[ "$failed" -gt 0 ] && status=1
echo
echo "$passed passed, $failed failed"
exit $status
