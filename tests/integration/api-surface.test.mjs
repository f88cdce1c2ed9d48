// The gateway's HTTP surface: authentication, every route with and without /v1, health probes,
// request validation, request ids and the per-request JSON log line.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FAKE_REPLY, fakeEmbedding } from '../fakes/openai-upstream.mjs';
import {
  startStack, request, postJSON, getJSON, auth, openAIErrorShapeProblem, modelNames,
  assertHealthyThenCleanExit, waitUntil, MASTER_KEY,
} from '../lib/harness.mjs';

const MSGS = [{ role: 'user', content: 'Say hello.' }];
let s;

before(async () => {
  s = await startStack();
});
after(async () => {
  if (s) await s.close();
});

function assertOpenAIError(r, status, what) {
  assert.equal(r.status, status, `${what}: status ${r.status}, body ${r.text}`);
  assert.match(r.headers['content-type'] || '', /application\/json/, `${what}: content-type`);
  assert.equal(openAIErrorShapeProblem(r.json), null, `${what}: ${openAIErrorShapeProblem(r.json)}; body ${r.text}`);
  return r.json.error;
}

describe('authentication', () => {
  test('no key → 401 with the OpenAI error shape', async () => {
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS }, { key: null });
    assertOpenAIError(r, 401, 'no key');
  });

  test('wrong key → 401 with the OpenAI error shape', async () => {
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS }, { key: 'sk-wrong' });
    assertOpenAIError(r, 401, 'wrong key');
  });

  test('key that is a prefix of the master key → 401', async () => {
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS }, { key: MASTER_KEY.slice(0, -1) });
    assertOpenAIError(r, 401, 'prefix key');
  });

  test('GET /v1/models also needs the key', async () => {
    const r = await getJSON(`${s.v1}/models`, { key: null });
    assertOpenAIError(r, 401, 'models without key');
  });

  test('rejected requests never reach the upstream', async () => {
    const n = s.fake.stats.count;
    await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS }, { key: 'sk-nope' });
    assert.equal(s.fake.stats.count, n);
  });

  test('master key as Authorization: Bearer → 200', async () => {
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, FAKE_REPLY);
  });
});

describe('routes, with and without /v1', () => {
  for (const prefix of ['/v1', '']) {
    test(`POST ${prefix}/chat/completions`, async () => {
      const r = await postJSON(`${s.url}${prefix}/chat/completions`, { model: 'gpt-test', messages: MSGS });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.object, 'chat.completion');
      assert.equal(r.json.choices[0].message.content, FAKE_REPLY);
      assert.equal(s.fake.stats.requests.at(-1).route, '/chat/completions');
    });

    test(`POST ${prefix}/embeddings`, async () => {
      const r = await postJSON(`${s.url}${prefix}/embeddings`, { model: 'text-embedding-test', input: 'embed me', encoding_format: 'float' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.object, 'list');
      assert.equal(r.json.data.length, 1);
      assert.equal(r.json.data[0].object, 'embedding');
      assert.equal(r.json.data[0].index, 0);
      assert.deepEqual(r.json.data[0].embedding, fakeEmbedding('embed me'));
      assert.equal(typeof r.json.usage.prompt_tokens, 'number');
      const up = s.fake.stats.requests.at(-1);
      assert.equal(up.route, '/embeddings');
      assert.equal(up.body.model, 'ok');
    });

    test(`GET ${prefix}/models lists the configured model names`, async () => {
      const r = await getJSON(`${s.url}${prefix}/models`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.object, 'list');
      assert.ok(Array.isArray(r.json.data));
      const ids = r.json.data.map((m) => m.id);
      assert.deepEqual([...ids].sort(), [...modelNames(s.cfg)].sort());
      for (const m of r.json.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.created, 'number');
        assert.equal(typeof m.owned_by, 'string');
      }
    });
  }

  for (const p of ['/health/liveliness', '/health/readiness', '/live', '/ready']) {
    test(`GET ${p} → 200 without auth`, async () => {
      const r = await request(`${s.url}${p}`);
      assert.equal(r.status, 200, r.text);
    });
  }
});

describe('request validation', () => {
  test('bad JSON → 400 invalid_request_error', async () => {
    const n = s.fake.stats.count;
    const r = await request(`${s.v1}/chat/completions`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: '{"model":"gpt-test","messages":[{"role":"user","content":"hi"}',
    });
    const e = assertOpenAIError(r, 400, 'bad JSON');
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(s.fake.stats.count, n, 'bad JSON must not reach the upstream');
  });

  test('body that is JSON but not an object → 400', async () => {
    const r = await request(`${s.v1}/chat/completions`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: '[1,2,3]',
    });
    assertOpenAIError(r, 400, 'array body');
  });

  test('missing model → 400', async () => {
    const r = await postJSON(`${s.v1}/chat/completions`, { messages: MSGS });
    const e = assertOpenAIError(r, 400, 'missing model');
    assert.equal(e.type, 'invalid_request_error');
  });

  test('missing messages → 400', async () => {
    const n = s.fake.stats.count;
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test' });
    const e = assertOpenAIError(r, 400, 'missing messages');
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(s.fake.stats.count, n, 'invalid request must not reach the upstream');
  });

  test('unknown model → 404 model_not_found', async () => {
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'no-such-model', messages: MSGS });
    const e = assertOpenAIError(r, 404, 'unknown model');
    assert.equal(e.code, 'model_not_found');
  });

  test('unknown embeddings model → 404 model_not_found', async () => {
    const r = await postJSON(`${s.v1}/embeddings`, { model: 'no-such-model', input: 'x' });
    const e = assertOpenAIError(r, 404, 'unknown embeddings model');
    assert.equal(e.code, 'model_not_found');
  });

  test('body over max_request_body (64 KiB) → 413', async () => {
    const big = { model: 'gpt-test', messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] };
    const n = s.fake.stats.count;
    const r = await postJSON(`${s.v1}/chat/completions`, big);
    assertOpenAIError(r, 413, 'oversized body');
    assert.equal(s.fake.stats.count, n);
  });

  test('body just under max_request_body is accepted', async () => {
    const body = { model: 'gpt-test', messages: [{ role: 'user', content: 'y'.repeat(60 * 1024) }] };
    const r = await postJSON(`${s.v1}/chat/completions`, body);
    assert.equal(r.status, 200, r.text.slice(0, 300));
  });

  test('GET /v1/chat/completions → 405', async () => {
    const r = await getJSON(`${s.v1}/chat/completions`);
    assertOpenAIError(r, 405, 'wrong method');
  });

  test('unknown path → 404 with the OpenAI error shape', async () => {
    const r = await getJSON(`${s.v1}/no/such/route`);
    assertOpenAIError(r, 404, 'unknown path');
  });
});

describe('HTTP/1.1 keep-alive', () => {
  test('plain, streamed and error responses reuse one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const reused = [];
    const onResponse = (res, req) => reused.push(req.reusedSocket);
    try {
      const plan = [
        { body: { model: 'gpt-test', messages: MSGS }, status: 200 },
        { body: { model: 'gpt-test', messages: MSGS, stream: true }, status: 200, sse: true },
        { body: { model: 'nope', messages: MSGS }, status: 404 },
        { body: { model: 'gpt-fail429', messages: MSGS }, status: 429 },
        { body: { model: 'gpt-test', messages: MSGS, stream: true, stream_options: { include_usage: true } }, status: 200, sse: true },
        { body: { model: 'gpt-test', messages: MSGS }, status: 200 },
      ];
      for (const step of plan) {
        const r = await request(`${s.v1}/chat/completions`, { method: 'POST', body: step.body, headers: auth(), agent, onResponse });
        assert.equal(r.status, step.status, r.text);
        assert.equal(r.complete, true);
        if (step.sse) assert.ok(r.text.endsWith('data: [DONE]\n\n'), r.text.slice(-100));
      }
      assert.deepEqual(reused, [false, true, true, true, true, true], 'connection was not kept alive');
    } finally {
      agent.destroy();
    }
  });
});

describe('request ids and logs', () => {
  test('every response carries x-request-id', async () => {
    const ok = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS });
    assert.equal(ok.status, 200);
    assert.ok(ok.headers['x-request-id'], 'x-request-id on 200');
    const nf = await postJSON(`${s.v1}/chat/completions`, { model: 'nope', messages: MSGS });
    assert.equal(nf.status, 404);
    assert.ok(nf.headers['x-request-id'], 'x-request-id on 404');
    const ok2 = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS });
    assert.notEqual(ok2.headers['x-request-id'], ok.headers['x-request-id'], 'request ids are unique');
    // Tollgate's ids are UUIDv7: unix milliseconds first, so they sort by time
    const v7 = /^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const r of [ok, nf, ok2]) {
      const m = v7.exec(r.headers['x-request-id']);
      assert.ok(m, `a UUIDv7: ${r.headers['x-request-id']}`);
      const ms = parseInt(m[1] + m[2], 16);
      assert.ok(Math.abs(ms - Date.now()) < 60000, `its time is now: ${new Date(ms).toISOString()}`);
    }
    assert.ok(ok.headers['x-request-id'].slice(0, 13) <= ok2.headers['x-request-id'].slice(0, 13), 'ordered by time');
  });

  test("the client's x-request-id is echoed", async () => {
    const rid = 'test-rid-echo-12345';
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS }, { headers: { 'x-request-id': rid } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-request-id'], rid);
  });

  test('one JSON log line per request with request_id, model, status, duration', async () => {
    const rid = 'test-rid-log-67890';
    const r = await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS }, { headers: { 'x-request-id': rid } });
    assert.equal(r.status, 200);
    await waitUntil(() => s.tg.logs().some((l) => l.request_id === rid), 2000, 'log line for the request');
    await new Promise((res) => setTimeout(res, 100));
    const lines = s.tg.logs().filter((l) => l.request_id === rid);
    assert.equal(lines.length, 1, `expected one log line, got ${JSON.stringify(lines)}`);
    const l = lines[0];
    assert.equal(l.model, 'gpt-test');
    assert.equal(l.status, 200);
    const dk = Object.keys(l).filter((k) => /duration/.test(k));
    assert.ok(dk.length > 0, `no duration field in ${JSON.stringify(l)}`);
    for (const k of dk) if (typeof l[k] !== 'object') assert.equal(typeof l[k], 'number', `${k} is a number`);
  });

  test('an error request is logged with its status', async () => {
    const rid = 'test-rid-log-404';
    await postJSON(`${s.v1}/chat/completions`, { model: 'nope', messages: MSGS }, { headers: { 'x-request-id': rid } });
    await waitUntil(() => s.tg.logs().some((l) => l.request_id === rid), 2000, 'log line for the 404');
    const l = s.tg.logs().find((x) => x.request_id === rid);
    assert.equal(l.status, 404);
  });

  test('the upstream gets the deployment key, never the client key', async () => {
    await postJSON(`${s.v1}/chat/completions`, { model: 'gpt-test', messages: MSGS });
    const up = s.fake.stats.requests.at(-1);
    assert.equal(up.headers.authorization, 'Bearer fake-key');
    assert.ok(!JSON.stringify(up.headers).includes(MASTER_KEY), 'master key leaked upstream');
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
