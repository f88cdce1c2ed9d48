// tests/bench/report.mjs — turns the raw lines run.sh collected into results.md and results.json.
//   node report.mjs out/raw.jsonl out/
// Every figure is the median over rounds; differences and ratios between targets are taken within
// each round first (same minute, same machine noise) and then the median of those is reported.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [rawPath, outDir] = process.argv.slice(2);
if (!rawPath || !outDir) {
  console.error('usage: node report.mjs RAW.jsonl OUTDIR');
  process.exit(2);
}
const rows = readFileSync(rawPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const meta = rows.find((r) => r.type === 'meta') || {};
const hz = meta.clk_tck || 100;
const targets = (meta.targets || 'direct nginx tollgate').split(/\s+/).filter(Boolean);
const KINDS = ['c1', 'c64', 'stream64'];
// Translation workloads: Tollgate only, the same OpenAI request for a model served by the mock
// Anthropic upstream; each is compared with Tollgate's OpenAI passthrough of the same round.
const TRANSLATIONS = [
  { key: 'openai_to_anthropic', kind: 'translate', passthrough: 'c64', label: 'translation OpenAI→Anthropic' },
  { key: 'openai_to_anthropic_stream', kind: 'translate-stream', passthrough: 'stream64',
    label: 'streaming translation OpenAI→Anthropic' },
];
// Keys, limits and budget: the c64 request with a virtual key (budget, rpm, tpm, parallel limits)
// instead of the master key, Tollgate only, run right after Tollgate's master-key c64 of the round.
const KEYED = { kind: 'c64-key', reference: 'c64-priced' };
const ALL_KINDS = [...KINDS, KEYED.reference, KEYED.kind, ...TRANSLATIONS.map((x) => x.kind)];
const BARS = { cpuRatio: 2.0, addedP99Us: 150, idleRssBytes: 20e6, keyCpuRatio: 1.3 };

const median = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

// Per-run derived numbers.
const runs = rows.filter((r) => r.type === 'wrk').map((r) => {
  const w = r.wrk;
  const errors = w.err_connect + w.err_read + w.err_write + w.err_status + w.err_timeout;
  const perReq = (ticks) => (ticks === null || !w.requests ? null : (ticks * 1e6) / hz / w.requests);
  return {
    round: r.round, kind: r.kind, target: r.target,
    requests: w.requests, rps: (w.requests * 1e6) / w.duration_us,
    // Latencies as measured (post.lua undoes wrk's coordinated-omission correction); wrk_* are
    // wrk's own corrected figures, kept for reference.
    p50_us: w.p50_us, p90_us: w.p90_us, p99_us: w.p99_us, p999_us: w.p999_us, max_us: w.max_us,
    wrk_p99_us: w.wrk_p99_us, wrk_p999_us: w.wrk_p999_us,
    errors, proxy_ticks: r.proxy_ticks, upstream_ticks: r.upstream_ticks,
    cpu_us_per_req: perReq(r.proxy_ticks), upstream_cpu_us_per_req: perReq(r.upstream_ticks),
    // Of cpu_us_per_req, what the proxy spent after wrk's last answer, until it was idle again
    // (Tollgate's spend journal writer storing the run's records), and how long that took.
    cpu_after_run_us_per_req: r.proxy_window_ticks == null || r.proxy_ticks == null ? null
      : perReq(r.proxy_ticks - r.proxy_window_ticks),
    settle_ms: r.settle_ms ?? null,
    // Of cpu_us_per_req, what Tollgate's store thread (tg-store, the SQLite writes) spent.
    cpu_store_us_per_req: r.store_thread_ticks == null ? null : perReq(r.store_thread_ticks),
  };
});
const rounds = [...new Set(runs.map((r) => r.round))].sort((a, b) => a - b);
const get = (t, k, round) => runs.find((r) => r.target === t && r.kind === k && r.round === round);

const summary = {};
for (const t of targets) {
  summary[t] = {};
  for (const k of [...KINDS, KEYED.reference]) { /* the key bar's master-key reference too */
    const rs = runs.filter((r) => r.target === t && r.kind === k);
    if (!rs.length) continue;
    const s = { rounds: rs.length, errors: rs.reduce((a, r) => a + r.errors, 0) };
    for (const f of ['rps', 'p50_us', 'p90_us', 'p99_us', 'p999_us', 'max_us', 'wrk_p99_us', 'wrk_p999_us',
      'cpu_us_per_req', 'upstream_cpu_us_per_req', 'cpu_after_run_us_per_req', 'settle_ms', 'cpu_store_us_per_req']) {
      s[f] = median(rs.map((r) => r[f]));
    }
    // Paired with direct / nginx in the same round.
    if (t !== 'direct') {
      s.added_p50_us = median(rounds.map((n) => {
        const a = get(t, k, n); const d = get('direct', k, n);
        return a && d && a.p50_us != null && d.p50_us != null ? a.p50_us - d.p50_us : null;
      }));
      s.added_p99_us = median(rounds.map((n) => {
        const a = get(t, k, n); const d = get('direct', k, n);
        return a && d && a.p99_us != null && d.p99_us != null ? a.p99_us - d.p99_us : null;
      }));
      s.added_wrk_p99_us = median(rounds.map((n) => {
        const a = get(t, k, n); const d = get('direct', k, n);
        return a && d ? a.wrk_p99_us - d.wrk_p99_us : null;
      }));
    }
    if (t === 'tollgate') {
      s.cpu_ratio_vs_nginx = median(rounds.map((n) => {
        const a = get(t, k, n); const g = get('nginx', k, n);
        return a && g && a.cpu_us_per_req && g.cpu_us_per_req ? a.cpu_us_per_req / g.cpu_us_per_req : null;
      }));
    }
    summary[t][k] = s;
  }
}
// Translation cost: CPU per translated request / CPU per passthrough request, both Tollgate's,
// taken within each round and then the median (like "CPU vs nginx").
const runStats = ['rps', 'p50_us', 'p90_us', 'p99_us', 'p999_us', 'max_us', 'cpu_us_per_req', 'upstream_cpu_us_per_req',
  'cpu_after_run_us_per_req', 'settle_ms', 'cpu_store_us_per_req'];
const translation = {};
for (const x of TRANSLATIONS) {
  const rs = runs.filter((r) => r.target === 'tollgate' && r.kind === x.kind);
  if (!rs.length) continue;
  const s = { rounds: rs.length, errors: rs.reduce((a, r) => a + r.errors, 0) };
  for (const f of runStats) s[f] = median(rs.map((r) => r[f]));
  s.passthrough_kind = x.passthrough;
  s.passthrough_cpu_us_per_req = summary.tollgate?.[x.passthrough]?.cpu_us_per_req ?? null;
  const pairs = rounds.map((n) => [get('tollgate', x.kind, n), get('tollgate', x.passthrough, n)])
    .filter(([a, p]) => a && p && a.cpu_us_per_req && p.cpu_us_per_req);
  s.cpu_ratio_vs_passthrough = median(pairs.map(([a, p]) => a.cpu_us_per_req / p.cpu_us_per_req));
  s.added_cpu_us_per_req = median(pairs.map(([a, p]) => a.cpu_us_per_req - p.cpu_us_per_req));
  summary.tollgate[x.kind] = s;
  translation[x.key] = { kind: x.kind, ...s };
}
// Keys: CPU per request with the virtual key / with the master key, Tollgate, per round, median.
let keys = null;
{
  const rs = runs.filter((r) => r.target === 'tollgate' && r.kind === KEYED.kind);
  const keyRow = rows.find((r) => r.type === 'key') || null;
  if (rs.length) {
    const s = { rounds: rs.length, errors: rs.reduce((a, r) => a + r.errors, 0) };
    for (const f of runStats) s[f] = median(rs.map((r) => r[f]));
    s.requests = rs.reduce((a, r) => a + r.requests, 0);
    s.master_key_kind = KEYED.reference;
    s.master_key_cpu_us_per_req = summary.tollgate?.[KEYED.reference]?.cpu_us_per_req ?? null;
    s.master_key_rps = summary.tollgate?.[KEYED.reference]?.rps ?? null;
    s.master_key_cpu_after_run_us_per_req = summary.tollgate?.[KEYED.reference]?.cpu_after_run_us_per_req ?? null;
    s.master_key_cpu_store_us_per_req = summary.tollgate?.[KEYED.reference]?.cpu_store_us_per_req ?? null;
    const pairs = rounds.map((n) => [get('tollgate', KEYED.kind, n), get('tollgate', KEYED.reference, n)])
      .filter(([a, p]) => a && p && a.cpu_us_per_req && p.cpu_us_per_req);
    s.cpu_ratio_vs_master_key = median(pairs.map(([a, p]) => a.cpu_us_per_req / p.cpu_us_per_req));
    s.added_cpu_us_per_req = median(pairs.map(([a, p]) => a.cpu_us_per_req - p.cpu_us_per_req));
    // The same ratio without the store thread: the request path (auth, admission, settlement,
    // journal) alone.
    const noStore = (r) => (r.cpu_store_us_per_req == null ? null : r.cpu_us_per_req - r.cpu_store_us_per_req);
    s.cpu_without_store_us_per_req = median(rs.map(noStore));
    s.master_key_cpu_without_store_us_per_req = median(runs.filter((r) => r.target === 'tollgate' &&
      r.kind === KEYED.reference).map(noStore));
    s.cpu_ratio_without_store = median(pairs.map(([a, p]) => {
      const x = noStore(a); const y = noStore(p);
      return x != null && y ? x / y : null;
    }));
    summary.tollgate[KEYED.kind] = s;
    keys = { kind: KEYED.kind, ...s };
  }
  if (keyRow) {
    keys = keys || { kind: KEYED.kind };
    keys.key_limits = keyRow.limits;
    keys.check_status = keyRow.check_status;
    keys.check_x_ratelimit_limit_requests = keyRow.x_ratelimit_limit_requests;
    keys.check_x_ratelimit_limit_tokens = keyRow.x_ratelimit_limit_tokens;
    keys.key_spend_after_usd = keyRow.spend_after;
  }
}
const streams = Object.fromEntries(rows.filter((r) => r.type === 'streams').map((r) => [r.target, r.result]));
const rss = Object.fromEntries(rows.filter((r) => r.type === 'rss').map((r) => [r.target, r]));

// Bars (Tollgate only).
const tg = summary.tollgate || {};
const verdict = (ok) => (ok === null ? 'not measured' : ok ? 'PASS' : 'FAIL');
const cpuRatio = tg.c64?.cpu_ratio_vs_nginx ?? null;
const addedP99 = tg.c1?.added_p99_us ?? null;
const st = streams.tollgate;
const idleBytes = rss.tollgate?.idle_kb != null ? rss.tollgate.idle_kb * 1024 : null;
const keyRatio = keys?.cpu_ratio_vs_master_key ?? null;
const bars = {
  cpu_ratio_c64: { value: cpuRatio, bar: `<= ${BARS.cpuRatio}`, verdict: verdict(cpuRatio === null ? null : cpuRatio <= BARS.cpuRatio) },
  added_p99_c1_us: { value: addedP99, bar: `< ${BARS.addedP99Us}`, verdict: verdict(addedP99 === null ? null : addedP99 < BARS.addedP99Us) },
  streams_all_in_order: { value: st ? `${st.ok}/${st.n}` : null, bar: 'all', verdict: verdict(st ? st.ok === st.n && st.n > 0 : null) },
  idle_rss_bytes: { value: idleBytes, bar: `< ${BARS.idleRssBytes}`, verdict: verdict(idleBytes === null ? null : idleBytes < BARS.idleRssBytes) },
  key_cpu_ratio_c64: { value: keyRatio, bar: `<= ${BARS.keyCpuRatio}`, verdict: verdict(keyRatio === null ? null : keyRatio <= BARS.keyCpuRatio) },
};

// ---- markdown ----
const f0 = (x) => (x === null || x === undefined ? '—' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (x === null || x === undefined ? '—' : x.toFixed(1));
const f2 = (x) => (x === null || x === undefined ? '—' : x.toFixed(2));
const mb = (kb) => (kb === null || kb === undefined ? '—' : ((kb * 1024) / 1e6).toFixed(1));
const signed = (x) => (x === null || x === undefined ? '—' : (x >= 0 ? '+' : '') + Math.round(x));

const nStreams = Object.values(streams)[0]?.n ?? 1000;
const lines = [];
lines.push(`# Tollgate benchmark — ${meta.date || ''}`, '');
lines.push(`${meta.rounds} rounds × ${meta.seconds} s per run, targets alternated within each round; medians over rounds. ` +
  `Machine: ${meta.nproc} cores (${meta.cpu || 'unknown CPU'}), kernel ${meta.kernel}; nginx ${meta.nginx}, wrk ${meta.wrk}, ` +
  `node ${meta.node}; tollgate ${meta.tollgate_rev}. wrk, the mock upstream and the proxy under test share these cores; ` +
  `1-minute load average before the runs: ${meta.loadavg_start} (well above 0 means other work was sharing the cores).`, '');
lines.push(`| target | p50 c=1 (µs) | p99 c=1 (µs) | added p99 vs direct (µs) | req/s c=64 | p99 c=64 (µs) | CPU µs/req c=64 | CPU vs nginx | CPU µs/req c=1 | stream req/s c=64 | stream CPU µs/req | RSS idle / peak (MB) | ${nStreams} streams |`);
lines.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|');
for (const t of targets) {
  const s = summary[t];
  const r = rss[t];
  const sr = streams[t];
  const stCell = sr ? `${sr.ok}/${sr.n} ok, ${f0(sr.wall_ms)} ms wall, peak ${sr.peak_open} open` : '—';
  lines.push(`| ${t} | ${f0(s.c1?.p50_us)} | ${f0(s.c1?.p99_us)} | ${t === 'direct' ? '—' : signed(s.c1?.added_p99_us)} | ` +
    `${f0(s.c64?.rps)} | ${f0(s.c64?.p99_us)} | ${f1(s.c64?.cpu_us_per_req)} | ` +
    `${t === 'tollgate' ? f2(s.c64?.cpu_ratio_vs_nginx) + '×' : t === 'nginx' ? '1.00×' : '—'} | ` +
    `${f1(s.c1?.cpu_us_per_req)} | ${f0(s.stream64?.rps)} | ${f1(s.stream64?.cpu_us_per_req)} | ` +
    `${r ? `${mb(r.idle_kb)} / ${mb(r.peak_kb)}` : '—'} | ${stCell} |`);
}
lines.push('');
lines.push('Latency at c=1 in detail (µs, medians over rounds). "wrk p99" is wrk\'s own figure, which adds ' +
  'coordinated-omission samples and so mostly measures scheduler stalls on a shared machine; see README.', '');
lines.push('| target | p50 | p90 | p99 | p99.9 | max | wrk p99 | added wrk p99 |');
lines.push('|---|--:|--:|--:|--:|--:|--:|--:|');
for (const t of targets) {
  const c = summary[t].c1 || {};
  lines.push(`| ${t} | ${f0(c.p50_us)} | ${f0(c.p90_us)} | ${f0(c.p99_us)} | ${f0(c.p999_us)} | ${f0(c.max_us)} | ` +
    `${f0(c.wrk_p99_us)} | ${t === 'direct' ? '—' : signed(c.added_wrk_p99_us)} |`);
}
lines.push('');
lines.push('Upstream (mock nginx) CPU µs per request, for reference — it does the same work whichever target is in front: ' +
  targets.map((t) => `${t} ${f1(summary[t].c64?.upstream_cpu_us_per_req)} (c=64)`).join(', ') + '.');
if (summary.tollgate?.c64?.cpu_store_us_per_req != null) {
  const c = summary.tollgate.c64;
  lines.push('', `Tollgate's CPU per request counts every thread, until it is idle again after the run (see README): ` +
    `at c=64, ${f1(c.cpu_store_us_per_req)} of its ${f1(c.cpu_us_per_req)} µs/request are its store thread writing the ` +
    `journaled spend records to SQLite, ${f1(c.cpu_after_run_us_per_req)} µs/request were spent after the last answer ` +
    `(${f0(c.settle_ms)} ms).`);
}
const errTotal = runs.reduce((a, r) => a + r.errors, 0);
if (errTotal) {
  lines.push('', `**Errors during the runs: ${errTotal}** (` + targets.map((t) =>
    `${t}: ${ALL_KINDS.reduce((a, k) => a + (summary[t][k]?.errors || 0), 0)}`).join(', ') + '). Figures from runs with errors are suspect.');
}
for (const t of targets) {
  const sr = streams[t];
  if (sr && sr.failed) lines.push('', `${t} streams failures: ` + (sr.errors || []).map((e) => `${e.count}× ${e.error}`).join('; '));
}
if (meta.tollgate_exited) lines.push('', '**Tollgate exited during the run**: its figures cover only the runs before that.');
lines.push('', '## Translation cost (Tollgate)', '');
lines.push('The same OpenAI chat request, c=64, to a model routed to the mock Anthropic Messages API, in the same ' +
  'rounds as the OpenAI passthrough; Tollgate CPU per request, ratio to the passthrough taken per round, median.', '');
for (const x of TRANSLATIONS) {
  const s = translation[x.key];
  if (!s) { lines.push(`- ${x.label}: not measured`); continue; }
  lines.push(`- ${x.label}: **${f1(s.cpu_us_per_req)} µs/request = ${f2(s.cpu_ratio_vs_passthrough)}× the OpenAI passthrough** ` +
    `(passthrough \`${x.passthrough}\` ${f1(s.passthrough_cpu_us_per_req)} µs/request, translation adds ` +
    `${signed(s.added_cpu_us_per_req)} µs/request; ${f0(s.rps)} req/s, p99 ${f0(s.p99_us)} µs c=64` +
    (s.errors ? `; **${s.errors} errors**` : '') + ')');
}
lines.push('', '## Keys, limits and budget (Tollgate)', '');
lines.push('The `c64` request (c=64, non-streaming, 1 KB) with a virtual key that has a budget, rpm, tpm and ' +
  'parallel-request limits, instead of the master key, in the same rounds right after Tollgate\'s master-key `c64` run; ' +
  'the deployments are priced, so every request is authenticated from the key cache, admitted against the limits and ' +
  'the budget, settled with its cost and its spend journaled. Tollgate CPU per request, ratio taken per round, median.', '');
if (keys && keys.cpu_us_per_req != null) {
  lines.push(`- with the virtual key: **${f1(keys.cpu_us_per_req)} µs/request**; with the master key: ` +
    `**${f1(keys.master_key_cpu_us_per_req)} µs/request**; ratio **${f2(keyRatio)}×** (bar ≤ ${BARS.keyCpuRatio}×) — ` +
    `${bars.key_cpu_ratio_c64.verdict}`);
  lines.push(`- the key adds ${signed(keys.added_cpu_us_per_req)} µs/request; ${f0(keys.rps)} req/s with the key, ` +
    `${f0(keys.master_key_rps)} with the master key; p99 ${f0(keys.p99_us)} µs c=64` +
    (keys.errors ? `; **${keys.errors} errors**` : ''));
  lines.push(`- of these, Tollgate's store thread (writing the journaled spend to SQLite): ` +
    `${f1(keys.cpu_store_us_per_req)} µs/request with the key, ${f1(keys.master_key_cpu_store_us_per_req)} with the master key; ` +
    `without it ${f1(keys.cpu_without_store_us_per_req)} and ${f1(keys.master_key_cpu_without_store_us_per_req)} µs/request, ` +
    `ratio ${f2(keys.cpu_ratio_without_store)}× (no bar); spent after the last answer until Tollgate was idle again: ` +
    `${f1(keys.cpu_after_run_us_per_req)} and ${f1(keys.master_key_cpu_after_run_us_per_req)} µs/request ` +
    `(${f0(keys.settle_ms)} ms after the key's run)`);
} else {
  lines.push(`- CPU per request with the virtual key / with the master key: not measured`);
}
if (keys && keys.check_status != null) {
  lines.push(`- before the load, a request with the key: ${keys.check_status}, x-ratelimit-limit-requests ` +
    `${keys.check_x_ratelimit_limit_requests ?? '—'}, x-ratelimit-limit-tokens ${keys.check_x_ratelimit_limit_tokens ?? '—'}; ` +
    `the key's spend in the store after the runs: ` +
    (keys.key_spend_after_usd == null ? '—' : `$${keys.key_spend_after_usd.toFixed(4)}`) +
    ` (${f0(keys.requests)} requests in the measured runs, plus warm-up and the check)`);
}
lines.push('', '## Bars (Tollgate)', '');
lines.push(`- CPU per proxied non-streaming 1 KB request, Tollgate / nginx, c=64: **${f2(cpuRatio)}×** (bar ≤ ${BARS.cpuRatio}×) — ${bars.cpu_ratio_c64.verdict}`);
lines.push(`- Added p99 latency over direct at c=1: **${signed(addedP99)} µs** (bar < ${BARS.addedP99Us} µs) — ${bars.added_p99_c1_us.verdict}`);
lines.push(`- ${st ? st.n : 1000} concurrent streams complete with every event in order: **${st ? `${st.ok}/${st.n}` : '—'}** — ${bars.streams_all_in_order.verdict}`);
lines.push(`- Idle RSS: **${mb(rss.tollgate?.idle_kb)} MB** (bar < 20 MB) — ${bars.idle_rss_bytes.verdict}`);
lines.push(`- CPU per request with a key, a budget and rate limits / with the master key, c=64: **${f2(keyRatio)}×** (bar ≤ ${BARS.keyCpuRatio}×) — ${bars.key_cpu_ratio_c64.verdict}`);
lines.push('');
const md = lines.join('\n');

writeFileSync(join(outDir, 'results.md'), md);
writeFileSync(join(outDir, 'results.json'), JSON.stringify({ meta, bars, summary, translation, keys, streams, rss, runs }, null, 2) + '\n');
console.log(md);
const failed = Object.values(bars).some((b) => b.verdict === 'FAIL') || meta.tollgate_exited === true;
process.exit(failed ? 1 : 0);
