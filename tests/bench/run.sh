#!/usr/bin/env bash
# tests/bench/run.sh — Tollgate against nginx as a plain reverse proxy, side by side, one run.
#
# Starts on 127.0.0.1: an nginx "upstream" that answers a fixed chat completion (JSON, ~1 KB) and
# a fixed SSE stream; an nginx "proxy" in front of it; Tollgate in front of it. Then drives the
# same requests with wrk at each target in turn (direct, nginx, tollgate), ROUNDS times, and
# writes tests/bench/out/results.{md,json}. See tests/bench/README.md for the method.
# The same upstream also answers as the Anthropic Messages API (a fixed message and a fixed
# stream); the "translate" workloads send the same OpenAI request to Tollgate for a model routed
# there, in the same rounds, to measure what OpenAI→Anthropic translation costs per request.
# The "c64-key" workload sends the c64 request to Tollgate with a virtual key (created through the
# admin API at start, with a budget and rate limits) instead of the master key, right after
# Tollgate's master-key c64 run of the same round: authentication from the key cache, admission
# against the limits and the budget, settlement and the key's spend journal are what it adds.
#
# Environment:
#   BENCH_SECONDS   seconds per wrk run (default 10)
#   ROUNDS          rounds of [direct, nginx, tollgate] per workload (default 3)
#   BENCH_STREAMS   concurrent streams in the streams test (default 1000)
#   BENCH_TARGETS   which targets to run (default "direct nginx tollgate")
#   BENCH_JOURNAL_SYNC  Tollgate's journal_sync (default interval; always makes every priced
#                   response wait for an fdatasync of the spend journal)
#   BENCH_KINDS     which workloads to run (default all: "c1 c64 c64-priced c64-key translate
#                   stream64 translate-stream")
#   TOLLGATE_BIN    binary to measure (default build/tollgate of this checkout)
#   BENCH_KEEP=1    keep the temporary directory (configs, logs) for inspection
#   BENCH_TOLLGATE_STDOUT  where Tollgate's stdout (its request log) goes (default: a file in the
#                   temporary directory; /dev/null shows what the log costs)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$HERE/out"
BIN=${TOLLGATE_BIN:-$ROOT/build/tollgate}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
NSTREAMS=${BENCH_STREAMS:-1000}
TARGETS=${BENCH_TARGETS:-direct nginx tollgate}
WARMUP_SECS=1

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---- prerequisites ------------------------------------------------------------------------
for tool in wrk nginx node curl getconf pgrep; do
  command -v "$tool" >/dev/null || die "'$tool' not found (make bench installs wrk, nginx, curl, procps; node >= 18 is needed too)"
done
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 ]] || die "BENCH_SECONDS must be a positive integer"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive integer"
for t in $TARGETS; do
  [[ $t == direct || $t == nginx || $t == tollgate ]] || die "unknown target '$t' in BENCH_TARGETS"
done
if has_target tollgate; then
  [ -x "$BIN" ] || die "$BIN is missing: build it first (make build, or make bench which builds it)"
fi
CLK_TCK=$(getconf CLK_TCK)

# 1,000 streams through a proxy hold ~2,000 descriptors in it and ~1,000 in each other process.
hard=$(ulimit -Hn)
want=65536
if [[ $hard != unlimited && $hard -lt $want ]]; then want=$hard; fi
if [ "$(ulimit -n)" -lt "$want" ]; then ulimit -n "$want" || true; fi
if [ "$(ulimit -n)" -lt $((NSTREAMS * 2 + 256)) ]; then
  log "warning: ulimit -n is $(ulimit -n); $NSTREAMS concurrent streams may run out of descriptors"
fi

# ---- process bookkeeping --------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? all=() p
  set +e
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do
    all+=("$p")
    for c in $(pgrep -P "$p" 2>/dev/null); do all+=("$c"); done
  done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ -n "${BENCH_KEEP:-}" ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ports: random ones below Linux's ephemeral range that nothing answers on.
PORTS_TAKEN=" "
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((12000 + RANDOM % 20000))
    [[ $PORTS_TAKEN == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      PORTS_TAKEN+="$p "
      echo "$p"
      return
    fi
  done
  die "no free port found"
}
UP=$(free_port)
PX=$(free_port)
TG=$(free_port)

# ---- mock upstream and nginx proxy ---------------------------------------------------------
# nginx `return` bodies: quote a file as one nginx string ('…' with \\ \' \n escapes).
nginx_string() {
  local s
  s=$(cat "$1"; printf x)
  s=${s%x}
  [[ $s != *'$'* ]] || die "$1 contains '\$', which nginx would expand"
  s=${s//\\/\\\\}
  s=${s//\'/\\\'}
  s=${s//$'\n'/\\n}
  printf "'%s'" "$s"
}

nginx_common() { # $1 = prefix dir
  local user=""
  [ "$(id -u)" -eq 0 ] && user="user root;"  # workers would otherwise run as nobody
  cat <<EOF
$user
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
EOF
}

nginx_http_common() { # $1 = prefix dir
  cat <<EOF
  access_log off;
  client_body_temp_path $1/client_body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  tcp_nodelay on;
EOF
}

# The JSON answer fits in an nginx string (`return`); the SSE stream (5.7 KB) is longer than nginx
# allows a config token to be, so it is a static file. nginx's static module refuses POST with
# 405; `error_page 405 =200 $uri` re-serves the file as a GET with status 200 (the request body is
# discarded and keep-alive is kept).
mkdir -p "$TMP/upstream/www/stream/v1/chat" "$TMP/upstream/www/slow/v1/chat" \
  "$TMP/upstream/www/anthropic-stream/v1" "$TMP/proxy"
cp "$HERE/stream.sse" "$TMP/upstream/www/stream/v1/chat/completions"
cp "$HERE/stream.sse" "$TMP/upstream/www/slow/v1/chat/completions"
cp "$HERE/anthropic-stream.sse" "$TMP/upstream/www/anthropic-stream/v1/messages"
RESPONSE=$(nginx_string "$HERE/response.json")
ANTHROPIC_RESPONSE=$(nginx_string "$HERE/anthropic-response.json")
{
  nginx_common "$TMP/upstream"
  echo "http {"
  nginx_http_common "$TMP/upstream"
  cat <<EOF
  open_file_cache max=16;
  etag off;
  server {
    listen 127.0.0.1:$UP backlog=4096;
    root $TMP/upstream/www;
    location = /v1/chat/completions {
      default_type application/json;
      return 200 $RESPONSE;
    }
    location = /stream/v1/chat/completions {
      default_type text/event-stream;
      add_header Cache-Control no-cache;
      error_page 405 =200 \$uri;
    }
    # Same stream sent at 2 KB/s (about 3 s per stream) so the streams test holds them all open.
    location = /slow/v1/chat/completions {
      default_type text/event-stream;
      add_header Cache-Control no-cache;
      limit_rate 2k;
      error_page 405 =200 \$uri;
    }
    # Anthropic Messages API (providers.md §3.3, §3.4) for the translation workloads: Tollgate's
    # anthropic adapter posts to {api_base}/v1/messages.
    location = /anthropic/v1/messages {
      default_type application/json;
      return 200 $ANTHROPIC_RESPONSE;
    }
    location = /anthropic-stream/v1/messages {
      default_type text/event-stream;
      add_header Cache-Control no-cache;
      error_page 405 =200 \$uri;
    }
    location / { return 404; }
  }
}
EOF
} >"$TMP/upstream/nginx.conf"

{
  nginx_common "$TMP/proxy"
  echo "http {"
  nginx_http_common "$TMP/proxy"
  cat <<EOF
  upstream mock {
    server 127.0.0.1:$UP;
    keepalive 128;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$PX backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /v1/ { proxy_pass http://mock; }
    location /stream/ { proxy_pass http://mock; proxy_buffering off; }
    location /slow/ { proxy_pass http://mock; proxy_buffering off; }
  }
}
EOF
} >"$TMP/proxy/nginx.conf"

cat >"$TMP/tollgate.yaml" <<EOF
model_list:
  # priced: every call is costed and its spend journaled and written to the store (c64-priced,
  # c64-key); the others are unpriced like a model missing from the price table, so c64 measures
  # the proxy path that nginx is compared with
  - model_name: bench-priced
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:$UP/v1
      api_key: bench-key
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: bench
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:$UP/v1
      api_key: bench-key
  - model_name: bench-stream
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:$UP/stream/v1
      api_key: bench-key
  - model_name: bench-slow
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:$UP/slow/v1
      api_key: bench-key
  - model_name: bench-anthropic
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_base: http://127.0.0.1:$UP/anthropic
      api_key: bench-key
  - model_name: bench-anthropic-stream
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_base: http://127.0.0.1:$UP/anthropic-stream
      api_key: bench-key
general_settings:
  master_key: sk-bench
tollgate_settings:
  workers: 1
  journal_sync: ${BENCH_JOURNAL_SYNC:-interval}
EOF

http_code() { # url [curl args…]
  local url=$1; shift
  curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true
}
wait_up() { # pid url want-code
  local pid=$1 url=$2 want=$3 code
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    code=$(http_code "$url")
    [[ $code == "$want" ]] && return 0
    sleep 0.1
  done
  return 1
}

start_nginx() { # name port → sets STARTED_PID
  local name=$1 port=$2
  nginx -p "$TMP/$name/" -c "$TMP/$name/nginx.conf" -e "$TMP/$name/error.log" \
    >"$TMP/$name/stdout.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  if ! wait_up "$STARTED_PID" "http://127.0.0.1:$port/" 404; then
    cat "$TMP/$name/stdout.log" "$TMP/$name/error.log" >&2 2>/dev/null || true
    die "nginx $name did not start"
  fi
}

start_nginx upstream "$UP"
UP_PID=$STARTED_PID
PX_PID=""
if has_target nginx; then
  start_nginx proxy "$PX"
  PX_PID=$STARTED_PID
fi
TG_PID=""
if has_target tollgate; then
  mkdir -p "$TMP/data"
  env -u DATABASE_URL -u REDIS_URL -u REDIS_HOST TOLLGATE_DATA_DIR="$TMP/data" \
    "$BIN" --config "$TMP/tollgate.yaml" --host 127.0.0.1 --port "$TG" --workers 1 \
    >"${BENCH_TOLLGATE_STDOUT:-$TMP/tollgate.log}" 2>>"$TMP/tollgate.log" &
  TG_PID=$!
  PIDS+=("$TG_PID")
  if ! wait_up "$TG_PID" "http://127.0.0.1:$TG/health/liveliness" 200; then
    tail -n 30 "$TMP/tollgate.log" >&2 || true
    die "tollgate did not answer 200 on /health/liveliness within 10 s"
  fi
fi

# ---- /proc readings ------------------------------------------------------------------------
procs_of() { # pid → the pid and its children (an nginx master and its workers)
  echo "$1"
  pgrep -P "$1" 2>/dev/null || true
}
cpu_ticks() { # pids… → utime+stime summed (all threads of each process)
  local t=0 p line f
  for p in "$@"; do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    line=${line##*) }           # fields from 3 (state) on; comm may contain spaces
    read -r -a f <<<"$line"
    t=$((t + f[11] + f[12]))    # fields 14 (utime) and 15 (stime)
  done
  echo "$t"
}
thread_ticks() { # pid name → utime+stime of that process's threads called name (0 if none)
  local t=0 task line f
  for task in /proc/"$1"/task/*; do
    line=$(cat "$task/stat" 2>/dev/null) || continue
    [[ ${line#*(} == "$2) "* ]] || continue
    line=${line##*) }
    read -r -a f <<<"$line"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
status_kb() { # field pids… → sum of that /proc/PID/status field in kB
  local field=$1 t=0 p v
  shift
  for p in "$@"; do
    v=$(awk -v k="$field:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
target_pids() {
  case $1 in
    direct) ;;
    nginx) procs_of "$PX_PID" ;;
    tollgate) echo "$TG_PID" ;;
  esac
}

# ---- targets and sanity checks ---------------------------------------------------------------
url_of() { # target kind
  local base path=/v1/chat/completions
  case $1 in
    direct) base=http://127.0.0.1:$UP ;;
    nginx) base=http://127.0.0.1:$PX ;;
    tollgate) base=http://127.0.0.1:$TG ;;
  esac
  if [[ $2 == stream* && $1 != tollgate ]]; then path=/stream/v1/chat/completions; fi
  if [[ $2 == slow && $1 != tollgate ]]; then path=/slow/v1/chat/completions; fi
  echo "$base$path"
}
# The translation workloads send the passthrough request bodies with only the model changed.
sed 's/^{"model":"bench",/{"model":"bench-anthropic",/' "$HERE/request.json" >"$TMP/request-translate.json"
sed 's/^{"model":"bench",/{"model":"bench-priced",/' "$HERE/request.json" >"$TMP/request-priced.json"
sed 's/^{"model":"bench-stream",/{"model":"bench-anthropic-stream",/' "$HERE/request-stream.json" \
  >"$TMP/request-translate-stream.json"
if ! grep -q '^{"model":"bench-anthropic",' "$TMP/request-translate.json" ||
  ! grep -q '^{"model":"bench-anthropic-stream",' "$TMP/request-translate-stream.json"; then
  die "request.json / request-stream.json must begin with {\"model\":\"bench\" / \"bench-stream\""
fi
body_of() {
  case $1 in
    translate) echo "$TMP/request-translate.json" ;;
    c64-priced | c64-key) echo "$TMP/request-priced.json" ;;
    translate-stream) echo "$TMP/request-translate-stream.json" ;;
    stream*) echo "$HERE/request-stream.json" ;;
    *) echo "$HERE/request.json" ;;
  esac
}
# Workloads and the targets they run against: only Tollgate translates and knows virtual keys, so
# the translate kinds and c64-key run against it alone.
KINDS=${BENCH_KINDS:-c1 c64 c64-priced c64-key translate stream64 translate-stream}
targets_of() { # kind
  if [[ $1 == translate* || $1 == c64-key || $1 == c64-priced ]]; then
    if has_target tollgate; then echo tollgate; fi
  else
    echo "$TARGETS"
  fi
}

check_target() { # target
  local t=$1 out
  out=$(curl -s --noproxy '*' --max-time 5 -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer sk-bench' --data-binary "@$HERE/request.json" "$(url_of "$t" c1)") || true
  [[ $out == *'"chat.completion"'* && $out == *'"usage"'* ]] ||
    die "$t: unexpected chat completion response: ${out:0:300}"
  out=$(curl -s -N --noproxy '*' --max-time 5 -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer sk-bench' --data-binary "@$HERE/request-stream.json" "$(url_of "$t" stream64)") || true
  [[ $out == *'t20 '* && $out == *'data: [DONE]'* ]] ||
    die "$t: unexpected streaming response: ${out:0:300}"
  if [[ $t == tollgate ]]; then
    local code
    code=$(http_code "$(url_of "$t" c1)" -H 'Content-Type: application/json' \
      -H 'Authorization: Bearer sk-wrong' --data-binary "@$HERE/request.json")
    [[ $code == 401 ]] || log "warning: tollgate answered $code (not 401) to a wrong key: is auth on the path?"
    check_translation
  fi
}

# Tollgate's answers for the Anthropic-backed models must be valid OpenAI replies with the
# upstream's content and usage (check_translation.mjs); otherwise the translate figures are void.
check_translation() {
  local out why
  out=$(curl -s --noproxy '*' --max-time 5 -w '\n%{http_code} %{content_type}' -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer sk-bench' --data-binary "@$(body_of translate)" "$(url_of tollgate translate)") || true
  [[ ${out##*$'\n'} == '200 application/json'* ]] ||
    die "tollgate, bench-anthropic: expected 200 application/json, got '${out##*$'\n'}': ${out:0:300}"
  why=$(node "$HERE/check_translation.mjs" json "$HERE/anthropic-response.json" 2>&1 <<<"${out%$'\n'*}") ||
    die "tollgate, bench-anthropic: not a valid OpenAI chat.completion for the Anthropic message: $why
reply: ${out:0:600}"
  out=$(curl -s -N --noproxy '*' --max-time 5 -w '\n%{http_code} %{content_type}' -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer sk-bench' --data-binary "@$(body_of translate-stream)" \
    "$(url_of tollgate translate-stream)") || true
  [[ ${out##*$'\n'} == '200 text/event-stream'* ]] ||
    die "tollgate, bench-anthropic-stream: expected 200 text/event-stream, got '${out##*$'\n'}': ${out:0:300}"
  why=$(node "$HERE/check_translation.mjs" sse "$HERE/anthropic-stream.sse" 2>&1 <<<"${out%$'\n'*}") ||
    die "tollgate, bench-anthropic-stream: not a valid OpenAI chat.completion.chunk stream for the Anthropic stream: $why
reply: ${out:0:600}"
}

RAW="$TMP/raw.jsonl"
: >"$RAW"
idle_rss_kb=""
if [ -n "$TG_PID" ]; then idle_rss_kb=$(status_kb VmRSS "$TG_PID"); fi
px_idle_rss_kb=""
if [ -n "$PX_PID" ]; then
  read -r -a px_procs <<<"$(procs_of "$PX_PID" | tr '\n' ' ')"
  px_idle_rss_kb=$(status_kb VmRSS "${px_procs[@]}")
fi
for t in $TARGETS; do check_target "$t"; done

# ---- virtual key ----------------------------------------------------------------------------
# c64-key runs with a key created here through the admin API (after the idle RSS reading), with a
# budget and limits far above what the run can reach: every request is authenticated from the key
# cache, admitted against rpm, tpm, parallel requests and the budget, settled with its real cost
# (the deployments are priced) and its spend journaled and written to the store (SQLite in
# $TMP/data). Before any load, one request with the key must be answered 200 with the limiter's
# x-ratelimit-* headers, or the c64-key figures would not measure that path.
KEY_LIMITS='{"max_budget": 1000000, "rpm_limit": 100000000, "tpm_limit": 100000000000, "max_parallel_requests": 100000}'
VKEY=""
KEY_LIMIT_REQ=null
KEY_LIMIT_TOK=null
json_field() { # field (a.b for a nested one) → its value in the JSON object on stdin ("" if absent)
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    let v; try { v = JSON.parse(s); } catch { v = {}; }
    for (const k of process.argv[1].split(".")) v = v == null ? undefined : v[k];
    process.stdout.write(v == null ? "" : String(v)); });' "$1"
}
make_key() {
  local out code
  out=$(curl -s --noproxy '*' --max-time 10 -w '\n%{http_code}' -H 'Authorization: Bearer sk-bench' \
    -H 'Content-Type: application/json' -d "$KEY_LIMITS" "http://127.0.0.1:$TG/key/generate") || true
  code=${out##*$'\n'}
  [[ $code == 200 ]] || die "tollgate /key/generate: expected 200, got '$code': ${out:0:300}"
  VKEY=$(json_field key <<<"${out%$'\n'*}")
  [[ -n $VKEY && $VKEY != *[[:space:]]* && $VKEY != sk-bench ]] ||
    die "tollgate /key/generate: no usable \"key\" in the answer: ${out:0:300}"
}
header_of() { # file name → that response header's value
  tr -d '\r' <"$1" | awk -v k="$2" 'tolower($1) == k ":" { print $2; exit }'
}
check_key() {
  local hdr="$TMP/key-check.headers" body="$TMP/key-check.json" code
  code=$(curl -s --noproxy '*' --max-time 5 -D "$hdr" -o "$body" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $VKEY" --data-binary "@$(body_of c64-key)" "$(url_of tollgate c64-key)") || true
  [[ $code == 200 ]] || die "tollgate: a request with the virtual key got $code, not 200: $(head -c 300 "$body" 2>/dev/null)"
  grep -q '"chat.completion"' "$body" || die "tollgate: unexpected answer with the virtual key: $(head -c 300 "$body")"
  KEY_LIMIT_REQ=$(header_of "$hdr" x-ratelimit-limit-requests)
  KEY_LIMIT_TOK=$(header_of "$hdr" x-ratelimit-limit-tokens)
  [[ $KEY_LIMIT_REQ =~ ^[0-9]+$ ]] ||
    die "tollgate: the answer to a request with the virtual key has no x-ratelimit-limit-requests header, so the limiter did not run; headers:
$(tr -d '\r' <"$hdr")"
  [[ $KEY_LIMIT_TOK =~ ^[0-9]+$ ]] || KEY_LIMIT_TOK=null
  log "virtual key: 200 with x-ratelimit-limit-requests $KEY_LIMIT_REQ, x-ratelimit-limit-tokens $KEY_LIMIT_TOK"
}
if has_target tollgate; then
  make_key
  check_key
fi
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
log "upstream :$UP  nginx proxy :$PX  tollgate :$TG  ($TARGETS; ${SECS}s x $ROUNDS rounds)"

# ---- load -------------------------------------------------------------------------------
# Tollgate finishes part of a request's work after the answer: the spend journal's writer thread
# stores the journaled records in batches, and under load it runs behind. So after each run the
# script waits until the proxy is idle again (at most 1 tick of CPU in 0.5 s, up to SETTLE_MAX_S)
# and counts that tail in the run's CPU; the next run then starts from an idle proxy. Tollgate's
# store thread (named tg-store: the SQLite writes) is also read on its own, to show that share.
SETTLE_MAX_S=300
settle() { # pids… → prints "ticks ms" once they are idle (or after SETTLE_MAX_S)
  local prev now start ms
  start=$(date +%s%N)
  prev=$(cpu_ticks "$@")
  while :; do
    sleep 0.5
    now=$(cpu_ticks "$@")
    ms=$((($(date +%s%N) - start) / 1000000))
    if [ $((now - prev)) -le 1 ]; then break; fi
    if [ "$ms" -ge $((SETTLE_MAX_S * 1000)) ]; then
      log "warning: still busy ${SETTLE_MAX_S}s after the run; counting the CPU up to now"
      break
    fi
    prev=$now
  done
  echo "$now $ms"
}
run_wrk() { # target kind round seconds
  local t=$1 kind=$2 round=$3 secs=$4 threads conns
  case $kind in
    c1) threads=1 conns=1 ;;
    c64 | c64-priced | c64-key | stream64 | translate | translate-stream) threads=2 conns=64 ;;
  esac
  local key=sk-bench
  [[ $kind == c64-key ]] && key=$VKEY
  local pids upids p0 p1 u0 u1 out line
  if [[ $t == tollgate ]] && ! kill -0 "$TG_PID" 2>/dev/null; then
    log "tollgate is not running: skipping $kind round $round"
    return 0
  fi
  read -r -a pids <<<"$(target_pids "$t" | tr '\n' ' ')"
  read -r -a upids <<<"$(procs_of "$UP_PID" | tr '\n' ' ')"
  local s0=0 s2=0
  [[ $t == tollgate ]] && s0=$(thread_ticks "$TG_PID" tg-store)
  p0=$(cpu_ticks "${pids[@]}")
  u0=$(cpu_ticks "${upids[@]}")
  out=$(BENCH_BODY=$(body_of "$kind") BENCH_CONNS=$conns BENCH_KEY=$key wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s \
    -s "$HERE/post.lua" "$(url_of "$t" "$kind")" 2>&1) || die "wrk failed against $t: $out"
  p1=$(cpu_ticks "${pids[@]}")
  u1=$(cpu_ticks "${upids[@]}")
  local p2=$p1 settle_ms=0
  if [[ $t != direct ]]; then read -r p2 settle_ms <<<"$(settle "${pids[@]}")"; fi
  [[ $t == tollgate ]] && s2=$(thread_ticks "$TG_PID" tg-store)
  if [[ $t == tollgate ]] && ! kill -0 "$TG_PID" 2>/dev/null; then
    log "tollgate exited during $kind round $round; its log ends with:"
    tail -n 20 "$TMP/tollgate.log" >&2 || true
    return 0
  fi
  line=$(grep '^WRK ' <<<"$out" | head -n 1) || die "no result line from wrk against $t: $out"
  [ "$round" -gt 0 ] || return 0 # warm-up
  local json=${line#WRK }
  local proxy_ticks=null window_ticks=null store_ticks=null
  if [[ $t != direct ]]; then proxy_ticks=$((p2 - p0)) window_ticks=$((p1 - p0)); fi
  [[ $t == tollgate ]] && store_ticks=$((s2 - s0))
  echo "{\"type\":\"wrk\",\"round\":$round,\"kind\":\"$kind\",\"target\":\"$t\",\"proxy_ticks\":$proxy_ticks,\"proxy_window_ticks\":$window_ticks,\"store_thread_ticks\":$store_ticks,\"settle_ms\":$settle_ms,\"upstream_ticks\":$((u1 - u0)),\"wrk\":$json}" >>"$RAW"
  local req=0 dur=1 p99=0 errs
  [[ $json =~ \"requests\":([0-9]+) ]] && req=${BASH_REMATCH[1]}
  [[ $json =~ \"duration_us\":([0-9]+) ]] && dur=${BASH_REMATCH[1]}
  [[ $json =~ \"p99_us\":([0-9]+) ]] && p99=${BASH_REMATCH[1]}
  errs=$(grep -o '"err_[a-z]*":[0-9]*' <<<"$json" | awk -F: '{ s += $2 } END { print s + 0 }')
  local cpu="-"
  if [[ $proxy_ticks != null && $req -gt 0 ]]; then
    cpu=$(awk -v t="$proxy_ticks" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  fi
  local tail=""
  if [[ $t != direct ]]; then tail=" (of which after the run $((p2 - p1)) ticks in ${settle_ms} ms)"; fi
  printf 'bench: round %d %-16s %-8s %9.0f req/s  p99 %6d us  cpu %6s us/req  errors %d%s\n' \
    "$round" "$kind" "$t" "$(awk -v n="$req" -v d="$dur" 'BEGIN { print n * 1e6 / d }')" \
    "$p99" "$cpu" "$errs" "$tail" >&2
}

log "warm-up (${WARMUP_SECS}s per target and workload)"
for kind in $KINDS; do
  [[ $kind == c1 ]] && continue
  for t in $(targets_of "$kind"); do run_wrk "$t" "$kind" 0 "$WARMUP_SECS"; done
done
# c64-key runs right after Tollgate's c64 (the master-key run it is compared with), translate right
# after that, and translate-stream right after stream64, so each sits next to its reference run.
for round in $(seq "$ROUNDS"); do
  for kind in $KINDS; do
    for t in $(targets_of "$kind"); do run_wrk "$t" "$kind" "$round" "$SECS"; done
  done
done

log "$NSTREAMS concurrent streams per target"
for t in $TARGETS; do
  model=bench-slow
  if [[ $t == tollgate ]] && ! kill -0 "$TG_PID" 2>/dev/null; then continue; fi
  res=$(node "$HERE/streams.mjs" --url "$(url_of "$t" slow)" --model "$model" --n "$NSTREAMS" \
    --key sk-bench --body "$HERE/request.json") || true
  [[ $res == '{'* ]] || res="{\"n\":$NSTREAMS,\"ok\":0,\"failed\":$NSTREAMS,\"errors\":[{\"error\":\"streams.mjs crashed\",\"count\":$NSTREAMS}]}"
  echo "{\"type\":\"streams\",\"target\":\"$t\",\"result\":$res}" >>"$RAW"
  log "streams $t: $res"
done

# ---- the key's spend, memory and the report ------------------------------------------------------
# What the store holds for the virtual key after the runs (the journal writer batches into it).
if [ -n "$VKEY" ] && kill -0 "$TG_PID" 2>/dev/null; then
  key_spend=$(curl -s --noproxy '*' --max-time 10 -H 'Authorization: Bearer sk-bench' \
    "http://127.0.0.1:$TG/key/info?key=$VKEY" | json_field info.spend) || true
  [[ $key_spend =~ ^[0-9.eE+-]+$ ]] || key_spend=null
  echo "{\"type\":\"key\",\"limits\":$KEY_LIMITS,\"check_status\":200,\"x_ratelimit_limit_requests\":$KEY_LIMIT_REQ,\"x_ratelimit_limit_tokens\":$KEY_LIMIT_TOK,\"spend_after\":$key_spend}" >>"$RAW"
fi

peak_rss_kb=""
TG_EXITED=false
if [ -n "$TG_PID" ]; then
  if kill -0 "$TG_PID" 2>/dev/null; then
    peak_rss_kb=$(status_kb VmHWM "$TG_PID")
  else
    TG_EXITED=true
    log "tollgate exited during the benchmark; the last lines of its log:"
    tail -n 20 "$TMP/tollgate.log" >&2 || true
  fi
fi
px_peak_rss_kb=""
if [ -n "$PX_PID" ]; then
  read -r -a px_procs <<<"$(procs_of "$PX_PID" | tr '\n' ' ')"
  px_peak_rss_kb=$(status_kb VmHWM "${px_procs[@]}")
fi
cat >>"$RAW" <<EOF
{"type":"rss","target":"tollgate","idle_kb":${idle_rss_kb:-null},"peak_kb":${peak_rss_kb:-null}}
{"type":"rss","target":"nginx","idle_kb":${px_idle_rss_kb:-null},"peak_kb":${px_peak_rss_kb:-null}}
EOF

rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
cat >>"$RAW" <<EOF
{"type":"meta","seconds":$SECS,"rounds":$ROUNDS,"clk_tck":$CLK_TCK,"nproc":$(nproc),"cpu":"${cpu_model//\"/}","kernel":"$(uname -r)","nginx":"$(nginx -v 2>&1 | sed 's/.*nginx\///')","wrk":"$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')","node":"$(node -v)","tollgate_rev":"$rev","tollgate_exited":$TG_EXITED,"loadavg_start":$LOAD_START,"loadavg_end":$(cut -d' ' -f1 /proc/loadavg),"date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","targets":"$TARGETS"}
EOF

mkdir -p "$OUT"
cp "$RAW" "$OUT/raw.jsonl"
# Exits 1 when Tollgate was measured and misses a bar (or exited), 0 otherwise.
node "$HERE/report.mjs" "$OUT/raw.jsonl" "$OUT"
