// tests/bench/streams.mjs — opens N streaming chat completions at once and checks every one.
//
//   node streams.mjs --url http://127.0.0.1:PORT/v1/chat/completions --model bench-slow \
//                    [--n 1000] [--key sk-bench] [--body request.json] [--timeout-ms 60000]
//
// All N requests are started in the same tick on separate connections. A stream passes when it
// answers 200 with SSE whose content deltas are exactly t01 … t20 in order, a chunk carries
// finish_reason "stop", the last event is `data: [DONE]` and nothing follows it. The mock
// upstream used by run.sh sends each stream slowly (nginx limit_rate), so the streams are all
// open at the same time; `peak_open` reports how many were in flight at once.
// Prints one JSON line and exits 0 only when every stream passed.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const opt = { n: '1000', key: 'sk-bench', body: join(here, 'request.json'), 'timeout-ms': '60000' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt) && k !== 'url' && k !== 'model') throw new Error(`unknown option --${k}`);
  opt[k] = process.argv[i + 1];
}
if (!opt.url || !opt.model) {
  console.error('usage: node streams.mjs --url URL --model NAME [--n N] [--key K] [--body FILE]');
  process.exit(2);
}
const N = Number(opt.n);
const timeoutMs = Number(opt['timeout-ms']);
const req0 = JSON.parse(readFileSync(opt.body, 'utf8'));
req0.model = opt.model;
req0.stream = true;
const body = Buffer.from(JSON.stringify(req0));
const EXPECTED = Array.from({ length: 20 }, (_, i) => `t${String(i + 1).padStart(2, '0')} `);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

let open = 0;
let peakOpen = 0;

function one() {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      resolve({ err, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    };
    const req = http.request(opt.url, {
      method: 'POST',
      agent,
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': body.length,
        Authorization: `Bearer ${opt.key}`,
        Accept: 'text/event-stream',
      },
    }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (d) => { if (text.length < 300) text += d; });
        res.on('end', () => finish(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        res.on('error', (e) => finish(`HTTP ${res.statusCode}: ${e.message}`));
        return;
      }
      open++;
      if (open > peakOpen) peakOpen = open;
      let buf = '';
      const got = [];
      let done = false;
      let stopped = false;
      let bad = null;
      const onEvent = (ev) => {
        const data = ev.split('\n').filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (!data && !ev.split('\n').some((l) => l.startsWith('data:'))) return; // comment/keep-alive
        if (done) { bad ??= 'event after [DONE]'; return; }
        if (data === '[DONE]') { done = true; return; }
        let j;
        try { j = JSON.parse(data); } catch { bad ??= `not JSON: ${data.slice(0, 80)}`; return; }
        if (j.error) { bad ??= `error event: ${JSON.stringify(j.error).slice(0, 120)}`; return; }
        const c = j.choices?.[0];
        if (c?.delta?.content) got.push(c.delta.content);
        if (c?.finish_reason === 'stop') stopped = true;
      };
      res.on('data', (d) => {
        buf += d;
        if (buf.includes('\r')) buf = buf.replace(/\r\n/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      });
      const ended = (why) => {
        open--;
        if (why) return finish(why);
        if (buf.trim()) onEvent(buf.trim());
        if (bad) return finish(bad);
        if (!done) return finish(`no [DONE] (after ${got.length} content deltas)`);
        if (!stopped) return finish('no finish_reason "stop"');
        if (got.length !== EXPECTED.length || got.some((g, k) => g !== EXPECTED[k])) {
          return finish(`content out of order or missing: ${got.join('|').slice(0, 120)}`);
        }
        finish(null);
      };
      res.on('end', () => ended(null));
      res.on('aborted', () => ended('response aborted'));
      res.on('error', (e) => ended(`response error: ${e.message}`));
    });
    req.setTimeout(timeoutMs, () => { req.destroy(new Error(`timeout after ${timeoutMs} ms`)); });
    req.on('error', (e) => finish(`request error: ${e.code || ''} ${e.message}`.trim()));
    req.end(body);
  });
}

const t0 = process.hrtime.bigint();
const results = await Promise.all(Array.from({ length: N }, () => one()));
const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
const errors = {};
let ok = 0;
for (const r of results) {
  if (r.err === null) ok++;
  else errors[r.err] = (errors[r.err] || 0) + 1;
}
const ms = results.map((r) => r.ms).sort((a, b) => a - b);
const pct = (p) => Math.round(ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))]);
const firstErrors = Object.entries(errors).sort((a, b) => b[1] - a[1]).slice(0, 5)
  .map(([e, c]) => ({ error: e, count: c }));
console.log(JSON.stringify({
  n: N, ok, failed: N - ok, peak_open: peakOpen, wall_ms: Math.round(wallMs),
  p50_ms: pct(50), max_ms: Math.round(ms[ms.length - 1]), errors: firstErrors,
}));
process.exit(ok === N ? 0 : 1);
