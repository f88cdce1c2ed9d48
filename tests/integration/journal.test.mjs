// The spend journal on the request path (gateway/spend_batch.h, DESIGN §7): records are written
// once per loop iteration before the final byte; with `journal_sync: always` the final byte also
// waits for an fdatasync that the sync thread runs, so the worker's loop keeps serving meanwhile.
//
// A disk that is slow or failing is made with an LD_PRELOAD shim (tests/lib/fsync_shim.c, built
// here with cc) that acts only on the journal's files: fdatasync sleeps TG_SHIM_FSYNC_MS and/or
// fails, or write(2) fails. One worker, so a blocked loop would show on every other request.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import {
  startTollgate,
  request,
  postJSON,
  readSSE,
  makeTempDir,
  sleep,
  waitUntil,
  MASTER_KEY,
  REPO_ROOT,
  openAIErrorShapeProblem,
} from '../lib/harness.mjs';

const SYNC_MS = 400; // the shim's fdatasync delay in the slow-disk tests

function buildShim() {
  const out = path.join(makeTempDir('tollgate-shim-'), 'fsync_shim.so');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', out, path.join(REPO_ROOT, 'tests/lib/fsync_shim.c'), '-ldl'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`cannot build the fsync shim: ${r.stderr}`);
  return out;
}

let shim;
before(() => {
  shim = buildShim();
});

function config(sync) {
  return [
    'model_list:',
    '  - model_name: priced',
    '    litellm_params: {model: mock/mock-x, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}',
    '  - model_name: unpriced',
    '    litellm_params: {model: mock/no-such-model-in-table}',
    'general_settings:',
    `  master_key: ${MASTER_KEY}`,
    'tollgate_settings:',
    `  journal_sync: ${sync}`,
    '  journal_sync_ms: 50',
  ].join('\n');
}

/** A Tollgate with one worker and the shim preloaded (shimEnv: TG_SHIM_* settings). */
function start(sync, shimEnv = {}) {
  return startTollgate({
    config: config(sync),
    workers: 1,
    env: {
      LD_PRELOAD: shim,
      // the sanitizer runtime must come first in the library list; the shim only wraps three calls
      ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || 'detect_leaks=1'}:verify_asan_link_order=0`,
      ...shimEnv,
    },
  });
}

/** Request ids of every intact record in the journal files of a data dir. */
function journalIds(dir) {
  const ids = new Set();
  for (const f of fs.readdirSync(dir)) {
    if (!f.startsWith('spend-') || !f.endsWith('.journal')) continue;
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const m = /^S2 ([0-9]+) [0-9a-f]{8} (.*)$/.exec(line);
      if (m && Buffer.byteLength(m[2]) === Number(m[1])) ids.add(m[2].split('\t')[0]);
    }
  }
  return ids;
}

const CHAT = (content, extra = {}) => ({ model: 'priced', messages: [{ role: 'user', content }], ...extra });

/** One request of each surface and kind; resolves { kind, r, journaled } read when it ended. */
function surfaces(tg, i) {
  const dataDir = path.join(tg.dir, 'data');
  const at = (kind) => (r) => ({ kind, r, journaled: journalIds(dataDir).has(r.headers['x-request-id']) });
  return [
    postJSON(`${tg.url}/v1/chat/completions`, CHAT(`chat ${i}`)).then(at('chat')),
    readSSE(`${tg.url}/v1/chat/completions`, { body: CHAT(`stream ${i}`, { stream: true }) }).then(at('chat stream')),
    postJSON(`${tg.url}/v1/messages`, { model: 'priced', max_tokens: 64, messages: [{ role: 'user', content: `m ${i}` }] }).then(
      at('messages'),
    ),
    readSSE(`${tg.url}/v1/messages`, {
      body: { model: 'priced', max_tokens: 64, stream: true, messages: [{ role: 'user', content: `ms ${i}` }] },
    }).then(at('messages stream')),
    postJSON(`${tg.url}/v1/chat`, { model: 'priced', messages: [{ role: 'user', content: `s ${i}` }] }).then(at('simple')),
    postJSON(`${tg.url}/v1/embeddings`, { model: 'priced', input: `embed ${i}` }).then(at('embeddings')),
  ];
}

/**
 * A stream whose record could not be written must not complete: h2o ends it with a broken chunk
 * (HTTP/1.1) so the client's parser fails, or the response ends incomplete. Returns a reason
 * when it did complete (a test failure), else null.
 */
async function streamCompleted(tg, content) {
  let s;
  try {
    s = await readSSE(`${tg.url}/v1/chat/completions`, { body: CHAT(content, { stream: true }) });
  } catch (e) {
    return /HPE_INVALID_CHUNK_SIZE|ECONNRESET|socket hang up/.test(`${e.code} ${e.message}`) ? null : `unexpected: ${e.message}`;
  }
  return s.complete && s.text.includes('[DONE]') ? `completed: ${s.text.slice(-200)}` : null;
}

async function stopClean(tg) {
  const code = await tg.stop();
  assert.equal(code, 0, `exit code\n${tg.stderr().slice(-3000)}`);
  assert.deepEqual(tg.sanitizerReport(), [], tg.sanitizerDigest());
}

describe('journal_sync: always', () => {
  let tg;
  before(async () => {
    tg = await start('always');
  });
  after(async () => {
    if (tg) await tg.stop('SIGKILL');
  });

  test('every surface completes, and each response finds its record already in the journal', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => surfaces(tg, i)).flat());
    for (const { kind, r, journaled } of results) {
      assert.equal(r.status, 200, `${kind}: ${r.text}`);
      assert.ok(r.complete, `${kind}: complete`);
      assert.ok(journaled, `${kind}: record ${r.headers['x-request-id']} not in the journal when the response ended`);
    }
    const streams = results.filter((x) => x.kind === 'chat stream');
    assert.ok(streams.every((x) => x.r.text.trimEnd().endsWith('data: [DONE]')), 'streams end with [DONE]');
    assert.ok(results.filter((x) => x.kind === 'chat').every((x) => Number(x.r.headers['x-litellm-response-cost']) > 0));
  });

  test('an unpriced call records nothing and still completes', async () => {
    const r = await postJSON(`${tg.url}/v1/chat/completions`, { model: 'unpriced', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 200);
    assert.ok(!journalIds(path.join(tg.dir, 'data')).has(r.headers['x-request-id']));
  });

  test('clean exit, no sanitizer report', async () => {
    await stopClean(tg);
    tg = null;
  });
});

describe(`a slow disk (fdatasync takes ${SYNC_MS} ms)`, () => {
  test('always: responses wait for the sync, the loop does not (health answers meanwhile)', async () => {
    const tg = await start('always', { TG_SHIM_FSYNC_MS: String(SYNC_MS) });
    try {
      const dataDir = path.join(tg.dir, 'data');
      const chat = postJSON(`${tg.url}/v1/chat/completions`, CHAT('slow sync'));
      const stream = readSSE(`${tg.url}/v1/chat/completions`, { body: CHAT('slow sync stream', { stream: true }) });
      await sleep(100); // both records are written by now and their sync is running
      const probes = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const h = await request(`${tg.url}/health/liveliness`, { timeoutMs: 5000 });
        probes.push({ status: h.status, ms: Date.now() - t0 });
        await sleep(20);
      }
      const [c, s] = await Promise.all([chat, stream]);
      assert.ok(probes.every((p) => p.status === 200), JSON.stringify(probes));
      // a loop blocked in fdatasync would hold the probes for most of SYNC_MS
      assert.ok(Math.max(...probes.map((p) => p.ms)) < SYNC_MS / 3, `health probes while syncing: ${JSON.stringify(probes)}`);
      assert.equal(c.status, 200);
      assert.equal(s.status, 200);
      assert.ok(s.complete && s.text.trimEnd().endsWith('data: [DONE]'));
      // the final bytes waited for the sync: at least one full fdatasync after the record
      assert.ok(c.tEnd - c.tStart >= SYNC_MS - 50, `non-stream took ${c.tEnd - c.tStart} ms`);
      assert.ok(s.tEnd - s.tStart >= SYNC_MS - 50, `stream took ${s.tEnd - s.tStart} ms`);
      const ids = journalIds(dataDir);
      assert.ok(ids.has(c.headers['x-request-id']) && ids.has(s.headers['x-request-id']));
    } finally {
      await stopClean(tg);
    }
  });

  test('always: clients that leave while their final byte is held (h2 reset, HTTP/1.1 close)', async () => {
    const tg = await start('always', { TG_SHIM_FSYNC_MS: String(SYNC_MS) });
    try {
      const dataDir = path.join(tg.dir, 'data');
      // h2c: each stream is reset while its record is being synced; h2o disposes the request
      // then, so the call's hold must leave the batch's list before the sync thread answers
      const c = http2.connect(tg.url);
      await Promise.all(
        [false, true, false, true].map(
          (stream, i) =>
            new Promise((resolve) => {
              const st = c.request({
                ':method': 'POST',
                ':path': '/v1/chat/completions',
                authorization: `Bearer ${MASTER_KEY}`,
                'content-type': 'application/json',
              });
              st.on('response', () => {});
              st.on('error', () => {});
              st.on('close', resolve);
              st.end(JSON.stringify(CHAT(`leave ${i}`, { stream })));
              setTimeout(() => st.close(http2.constants.NGHTTP2_CANCEL), 150);
            }),
        ),
      );
      c.close();
      // HTTP/1.1: the socket closes while the reply is held
      const aborted = new AbortController();
      const gone = postJSON(`${tg.url}/v1/chat/completions`, CHAT('leave h1'), { signal: aborted.signal }).catch((e) => e);
      setTimeout(() => aborted.abort(), 150);
      await gone;
      await sleep(SYNC_MS * 2 + 200); // the syncs those holds waited for have answered by now
      // every one of them was torn down and logged: h2 at the reset, HTTP/1.1 when its held
      // reply met the closed socket
      const left = () => tg.logs().filter((l) => l.path === '/v1/chat/completions');
      await waitUntil(() => left().length >= 5, 3000, 'five log lines').catch(() => {});
      assert.equal(left().length, 5, JSON.stringify(left().map((l) => [l.status, l.stream, l.error])));
      // the worker is fine, and later requests complete
      const r = await postJSON(`${tg.url}/v1/chat/completions`, CHAT('after'));
      assert.equal(r.status, 200);
      assert.ok(journalIds(dataDir).has(r.headers['x-request-id']));
      // all six calls were answered upstream: their records are written, whether or not the client stayed
      assert.equal(journalIds(dataDir).size, 6, 'records of 4 reset h2 streams, 1 closed HTTP/1.1 request, 1 completed');
    } finally {
      await stopClean(tg);
    }
  });

  test('interval: responses do not wait for the sync at all', async () => {
    const tg = await start('interval', { TG_SHIM_FSYNC_MS: String(SYNC_MS) });
    try {
      await sleep(SYNC_MS + 100); // let the sync thread's first (empty) round pass
      const times = [];
      for (let i = 0; i < 5; i++) {
        const r = await postJSON(`${tg.url}/v1/chat/completions`, CHAT(`interval ${i}`));
        assert.equal(r.status, 200);
        times.push(r.tEnd - r.tStart);
      }
      assert.ok(Math.max(...times) < SYNC_MS / 2, `interval-mode latencies: ${times}`);
    } finally {
      await stopClean(tg);
    }
  });
});

describe('a failing disk: a response is never completed without its record', () => {
  test('always + fdatasync fails: 500 for a non-stream reply, a cut stream, health fine', async () => {
    const tg = await start('always', { TG_SHIM_FSYNC_FAIL: '1' });
    try {
      const c = await postJSON(`${tg.url}/v1/chat/completions`, CHAT('no sync'));
      assert.equal(c.status, 500, c.text);
      assert.equal(openAIErrorShapeProblem(c.json), null, c.text);
      assert.equal(c.headers['x-litellm-response-cost'], undefined);
      const m = await postJSON(`${tg.url}/v1/messages`, { model: 'priced', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] });
      assert.equal(m.status, 500);
      assert.equal(m.json?.type, 'error', `Anthropic's error shape: ${m.text}`);
      assert.equal(await streamCompleted(tg, 'no sync stream'), null);
      const u = await postJSON(`${tg.url}/v1/chat/completions`, { model: 'unpriced', messages: [{ role: 'user', content: 'x' }] });
      assert.equal(u.status, 200, 'nothing to record: nothing to wait for');
      const h = await request(`${tg.url}/health/liveliness`);
      assert.equal(h.status, 200);
      assert.match(tg.stderr(), /fdatasync failed/);
    } finally {
      await stopClean(tg);
    }
  });

  test('write(2) fails: 500 for a non-stream reply, a cut stream, the records counted as lost', async () => {
    const tg = await start('interval', { TG_SHIM_WRITE_FAIL: '1' });
    try {
      const c = await postJSON(`${tg.url}/v1/chat/completions`, CHAT('no write'));
      assert.equal(c.status, 500, c.text);
      assert.match(c.json.error.message, /spend record could not be written/);
      assert.equal(await streamCompleted(tg, 'no write stream'), null);
      assert.match(tg.stderr(), /journal write failed/);
      assert.equal(journalIds(path.join(tg.dir, 'data')).size, 0);
    } finally {
      await stopClean(tg);
    }
  });
});
