-- wrk script for tests/bench: POSTs the body in $BENCH_BODY as a chat completion request (bearer
-- token $BENCH_KEY, default sk-bench) and, when wrk finishes, prints one line "WRK {json}" with the
-- counts and the latency percentiles in µs.
--
-- Two sets of percentiles are printed:
--   p50_us, p99_us, …        the latencies wrk actually measured, one sample per response;
--   wrk_p50_us, wrk_p99_us … what wrk itself reports. Before reporting, wrk 4 "corrects" for
--                            coordinated omission (stats_correct in src/wrk.c): every sample
--                            longer than twice the mean interval between requests on a
--                            connection is copied again at (sample − k × interval) for k = 1, 2, …
--                            At concurrency 1 this turns one 3 ms scheduler stall of a shared VM
--                            into ~150 samples, so the p99 measures the machine's hiccups rather
--                            than the proxy. The correction is a fixed function of the histogram,
--                            so done() undoes it: with e the interval wrk used, the corrected
--                            count at v is C(v) = O(v) + O(v+e) + O(v+2e) + … for v > e, hence
--                            O(v) = C(v) − C(v+e).
-- $BENCH_CONNS must be the -c value passed to wrk (it determines e).
local path = os.getenv("BENCH_BODY")
local f = assert(io.open(path, "rb"), "BENCH_BODY: cannot open " .. tostring(path))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
-- $BENCH_KEY is the bearer token (default sk-bench, the bench's master key; run.sh passes a
-- virtual key for the c64-key workload).
local key = os.getenv("BENCH_KEY")
if key == nil or key == "" then key = "sk-bench" end
wrk.headers["Authorization"] = "Bearer " .. key

local PCTS = { { "p50", 50 }, { "p90", 90 }, { "p99", 99 }, { "p999", 99.9 } }

-- Percentiles of the uncorrected samples, or nil when they cannot be recovered.
local function raw_latency(summary, latency)
  local conns = tonumber(os.getenv("BENCH_CONNS") or "")
  if not conns or conns < 1 then return nil end
  local per_conn = math.floor(summary.requests / conns)
  if per_conn < 1 then return nil end
  local e = math.floor(summary.duration / per_conn)
  local n = #latency
  local vals, counts = {}, {}
  for i = 1, n do
    local v, c = latency(i)
    vals[i] = v
    counts[v] = c
  end
  local orig, total, sum = {}, 0, 0
  for i = 1, n do
    local v = vals[i]
    local o = counts[v]
    if e > 0 and v > e then o = o - (counts[v + e] or 0) end
    if o < 0 then return nil end -- not the correction we know: give up rather than guess
    orig[i] = o
    total = total + o
    sum = sum + o * v
  end
  if total == 0 then return nil end
  local r = { count = total, mean = sum / total, interval = e }
  for _, p in ipairs(PCTS) do
    local rank = math.floor((p[2] / 100) * total + 0.5 + 0.5) -- wrk's round(p * count + 0.5)
    local acc = 0
    for i = 1, n do
      acc = acc + orig[i]
      if acc >= rank then r[p[1]] = vals[i]; break end
    end
  end
  for i = n, 1, -1 do
    if orig[i] > 0 then r.max = vals[i]; break end
  end
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  local raw = raw_latency(summary, latency) or {}
  local function num(x) if x == nil then return "null" end return string.format("%d", x) end
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%s,"p90_us":%s,"p99_us":%s,"p999_us":%s,"max_us":%s,"mean_us":%s,' ..
    '"raw_samples":%s,"wrk_interval_us":%s,' ..
    '"wrk_p50_us":%d,"wrk_p90_us":%d,"wrk_p99_us":%d,"wrk_p999_us":%d,"wrk_mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    num(raw.p50), num(raw.p90), num(raw.p99), num(raw.p999), num(raw.max),
    raw.mean and string.format("%.1f", raw.mean) or "null",
    num(raw.count), num(raw.interval),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
