// Many simultaneous streams: 1000 concurrent `ok` streams over HTTP/1.1, every one complete,
// in order, byte-identical to what the upstream sent for it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FAKE_REPLY_PIECES } from '../fakes/openai-upstream.mjs';
import { startStack, readSSE, request, postJSON, assertHealthyThenCleanExit } from '../lib/harness.mjs';

const N = Number(process.env.TOLLGATE_TEST_STREAMS || 1000);
let s;

before(async () => {
  s = await startStack();
});
after(async () => {
  if (s) await s.close();
});

test(`${N} concurrent streams all complete, in order, with [DONE]`, { timeout: 60000 }, async () => {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const n0 = s.fake.requestsFor('/chat/completions').length;
  const t0 = Date.now();
  const results = await Promise.allSettled(
    Array.from({ length: N }, (_, i) =>
      readSSE(`${s.v1}/chat/completions`, {
        agent,
        timeoutMs: 45000,
        body: { model: 'gpt-test', stream: true, stream_options: { include_usage: true }, user: `conc-${i}`, messages: [{ role: 'user', content: `stream ${i}` }] },
      }),
    ),
  );
  const elapsed = Date.now() - t0;
  agent.destroy();

  const byUser = new Map();
  for (const rec of s.fake.requestsFor('/chat/completions').slice(n0)) byUser.set(rec.body.user, rec);

  const failures = [];
  results.forEach((res, i) => {
    if (res.status === 'rejected') {
      failures.push(`#${i}: ${res.reason && res.reason.message}`);
      return;
    }
    const r = res.value;
    if (r.status !== 200) return failures.push(`#${i}: status ${r.status} ${r.text.slice(0, 200)}`);
    if (!r.complete) return failures.push(`#${i}: incomplete (${r.error && r.error.message})`);
    const ev = r.events;
    if (ev.at(-1)?.data !== '[DONE]') return failures.push(`#${i}: no [DONE] at the end`);
    const contents = ev.filter((e) => e.json).map((e) => e.json.choices?.[0]?.delta?.content).filter((c) => c);
    if (contents.join('|') !== FAKE_REPLY_PIECES.join('|')) return failures.push(`#${i}: content out of order: ${contents.join('|')}`);
    const up = byUser.get(`conc-${i}`);
    if (!up) return failures.push(`#${i}: upstream never saw it`);
    if (up.sentText !== r.text) return failures.push(`#${i}: bytes differ from the upstream's`);
    return undefined;
  });
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length}/${N} streams failed (in ${elapsed} ms)`);
  assert.equal(byUser.size, N);
  assert.ok(elapsed < 30000, `${N} streams took ${elapsed} ms`);
  // the upstream connections were all released
  await s.fake.waitFor((st) => st.active === 0, 5000, 'upstream requests to finish');
});

test('serves normally afterwards', async () => {
  const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: [{ role: 'user', content: 'after' }] });
  assert.equal(r.status, 200);
  const h = await request(`${s.url}/health/liveliness`);
  assert.equal(h.status, 200);
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
