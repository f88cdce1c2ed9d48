// Proxying to an OpenAI-compatible upstream: pass-through of bodies and streams, usage
// handling, incremental streaming, upstream errors, timeouts, truncation, client disconnects,
// and the built-in mock provider.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  FAKE_REPLY, FAKE_REPLY_PIECES, ERROR_BODIES, promptTokens, SLOW_CHUNK_INTERVAL_MS,
} from '../fakes/openai-upstream.mjs';
import {
  startStack, request, postJSON, readSSE, sseEvents, sseJson, streamText, openAIErrorShapeProblem,
  assertHealthyThenCleanExit, freePort, sleep, UPSTREAM_KEY,
} from '../lib/harness.mjs';

const MSGS = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Say hello to the test suite.' },
];
let s;

before(async () => {
  const closed = await freePort(); // nothing listens there
  s = await startStack({
    extraModels: [
      { model_name: 'gpt-closed', litellm_params: { model: 'openai/ok', api_base: `http://127.0.0.1:${closed}/v1`, api_key: UPSTREAM_KEY } },
    ],
  });
});
after(async () => {
  if (s) await s.close();
});

const chatURL = () => `${s.v1}/chat/completions`;
const lastUp = () => s.fake.stats.last['/v1/chat/completions'];

function assertOpenAIError(r, status, what) {
  assert.equal(r.status, status, `${what}: status ${r.status}, body ${r.text}`);
  assert.equal(openAIErrorShapeProblem(r.json), null, `${what}: ${openAIErrorShapeProblem(r.json)}; body ${r.text}`);
  return r.json.error;
}

describe('non-streaming pass-through', () => {
  test('upstream model name is spliced in, every other field arrives untouched', async () => {
    const body = {
      model: 'gpt-test',
      messages: MSGS,
      n: 1,
      stop: ['\n\n', 'END'],
      user: 'user-42',
      temperature: 0.25,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' }, strict: true } },
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      tool_choice: 'auto',
      x_custom: { a: [1, 2] },
      unicode: 'héllo ✓ 🚀 "quoted" \\ back',
    };
    const r = await postJSON(chatURL(), body);
    assert.equal(r.status, 200, r.text);
    const up = lastUp();
    assert.deepEqual(up.body, { ...body, model: 'ok' });
    assert.equal(up.method, 'POST');
    assert.equal(up.path, '/v1/chat/completions');
    assert.match(up.headers['content-type'] || '', /application\/json/);
  });

  test('response body is byte-identical to the upstream body', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-test', messages: MSGS });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] || '', /application\/json/);
    const sent = lastUp().sentBytes;
    assert.equal(r.text, sent.toString('utf8'));
    assert.ok(r.body.equals(sent));
    const p = promptTokens(MSGS);
    assert.deepEqual(r.json.usage, { prompt_tokens: p, completion_tokens: 5, total_tokens: p + 5 });
  });

  test('non-stream requests are not turned into streams', async () => {
    await postJSON(chatURL(), { model: 'gpt-test', messages: MSGS });
    const up = lastUp();
    assert.notEqual(up.body.stream, true);
    assert.equal(up.body.stream_options, undefined);
  });
});

describe('streaming', () => {
  test('with include_usage: the client receives the upstream stream byte for byte', async () => {
    const body = { model: 'gpt-test', messages: MSGS, stream: true, stream_options: { include_usage: true } };
    const r = await readSSE(chatURL(), { body });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
    assert.equal(r.complete, true);
    const up = lastUp();
    assert.deepEqual(up.body, { ...body, model: 'ok' });
    assert.equal(r.text, up.sentText, 'stream bytes differ from the upstream bytes');
    const chunks = sseJson(r.text);
    assert.deepEqual(chunks.at(-1).choices, []);
    assert.equal(chunks.at(-1).usage.completion_tokens, 5);
    assert.equal(r.events.at(-1).data, '[DONE]');
  });

  test('without include_usage: gateway asks upstream for usage but hides the usage chunk', async () => {
    const r = await readSSE(chatURL(), { body: { model: 'gpt-test', messages: MSGS, stream: true } });
    assert.equal(r.status, 200);
    assert.equal(r.complete, true);
    const up = lastUp();
    assert.equal(up.body.stream, true);
    assert.equal(up.body.stream_options?.include_usage, true, 'gateway must request usage upstream');
    const ev = r.events;
    assert.equal(ev.at(-1).data, '[DONE]');
    assert.equal(ev.filter((e) => e.data === '[DONE]').length, 1);
    for (const e of ev.slice(0, -1)) {
      assert.ok(e.json, `non-JSON event ${e.data}`);
      assert.ok(!(Array.isArray(e.json.choices) && e.json.choices.length === 0), `usage chunk leaked: ${e.data}`);
      assert.ok(e.json.usage === undefined || e.json.usage === null, `usage leaked: ${e.data}`);
    }
    const contents = ev.slice(0, -1).map((e) => e.json.choices[0].delta.content).filter((c) => c);
    assert.deepEqual(contents, FAKE_REPLY_PIECES, 'content chunks in order');
    assert.equal(ev.slice(0, -1).at(-1).json.choices[0].finish_reason, 'stop');
  });

  test('include_usage:false is treated like absent', async () => {
    const r = await readSSE(chatURL(), { body: { model: 'gpt-test', messages: MSGS, stream: true, stream_options: { include_usage: false } } });
    assert.equal(r.status, 200);
    assert.equal(lastUp().body.stream_options?.include_usage, true);
    assert.ok(!sseJson(r.text).some((c) => Array.isArray(c.choices) && c.choices.length === 0));
    assert.equal(streamText(r.text), FAKE_REPLY);
    assert.equal(r.events.at(-1).data, '[DONE]');
  });

  test('streaming is incremental (slow upstream)', async () => {
    const r = await readSSE(chatURL(), { body: { model: 'gpt-slow', messages: MSGS, stream: true } });
    assert.equal(r.status, 200);
    assert.equal(streamText(r.text), FAKE_REPLY);
    // arrival time of the first chunk carrying content text
    let acc = '';
    let tFirstContent = null;
    for (const c of r.chunks) {
      acc += c.data.toString('utf8');
      if (tFirstContent === null && sseEvents(acc).some((e) => e.json?.choices?.[0]?.delta?.content)) tFirstContent = c.t;
    }
    const tLast = r.chunks.at(-1).t;
    assert.ok(tFirstContent !== null);
    assert.ok(tFirstContent < tLast - 400, `first content at +${tFirstContent - r.tStart} ms, last chunk at +${tLast - r.tStart} ms: not incremental`);
    assert.ok(r.chunks.length >= 4, `only ${r.chunks.length} network chunks`);
  });

  test('200 small chunks arrive complete and in order', async () => {
    const r = await readSSE(chatURL(), { body: { model: 'gpt-many', messages: MSGS, stream: true, stream_options: { include_usage: true } } });
    assert.equal(r.status, 200);
    assert.equal(streamText(r.text), Array.from({ length: 200 }, (_, i) => `${i} `).join(''));
    assert.equal(r.text, lastUp().sentText);
  });

  test('tool-call deltas pass through', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];
    const r = await readSSE(chatURL(), { body: { model: 'gpt-tools', messages: MSGS, tools, stream: true, stream_options: { include_usage: true } } });
    assert.equal(r.status, 200);
    assert.equal(r.text, lastUp().sentText);
  });
});

describe('upstream errors', () => {
  test('500 → 500 with the upstream OpenAI error body', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-fail500', messages: MSGS });
    assertOpenAIError(r, 500, 'fail500');
    assert.deepEqual(r.json, ERROR_BODIES.fail500);
  });

  test('429 → 429 with retry-after forwarded', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-fail429', messages: MSGS });
    assertOpenAIError(r, 429, 'fail429');
    assert.deepEqual(r.json, ERROR_BODIES.fail429);
    assert.equal(r.headers['retry-after'], '7');
  });

  test('400 context_length_exceeded → 400 with the body passed', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-fail400', messages: MSGS });
    const e = assertOpenAIError(r, 400, 'fail400');
    assert.equal(e.code, 'context_length_exceeded');
    assert.deepEqual(r.json, ERROR_BODIES.fail400);
  });

  test('errors before a stream starts are plain JSON errors too', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-fail429', messages: MSGS, stream: true });
    assertOpenAIError(r, 429, 'fail429 stream');
    assert.equal(r.headers['retry-after'], '7');
  });

  test('HTML 502 → 502 wrapped in the OpenAI error shape naming the upstream status', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-html502', messages: MSGS });
    const e = assertOpenAIError(r, 502, 'html502');
    assert.match(r.headers['content-type'] || '', /application\/json/);
    assert.match(e.message, /502/);
  });

  test('hanging upstream with timeout: 1 → 504 within ~3 s and the upstream transfer is dropped', async () => {
    const aborted0 = s.fake.stats.aborted;
    const t0 = Date.now();
    const r = await postJSON(chatURL(), { model: 'gpt-hang', messages: MSGS }, { timeoutMs: 10000 });
    const dt = Date.now() - t0;
    assertOpenAIError(r, 504, 'hang');
    assert.ok(dt >= 900, `504 after only ${dt} ms`);
    assert.ok(dt < 3000, `504 after ${dt} ms`);
    await s.fake.waitFor((st) => st.aborted > aborted0, 1000, 'upstream connection closed after the timeout');
  });

  test('hanging upstream, stream request → 504 too', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-hang', messages: MSGS, stream: true }, { timeoutMs: 10000 });
    assertOpenAIError(r, 504, 'hang stream');
  });

  test('unreachable upstream (closed port) → 502', async () => {
    const t0 = Date.now();
    const r = await postJSON(chatURL(), { model: 'gpt-closed', messages: MSGS }, { timeoutMs: 10000 });
    assertOpenAIError(r, 502, 'closed port');
    assert.ok(Date.now() - t0 < 3000);
  });

  test('truncated stream → client stream ends with a final error event', async () => {
    const r = await readSSE(chatURL(), { body: { model: 'gpt-truncate', messages: MSGS, stream: true }, timeoutMs: 10000 });
    assert.equal(r.status, 200);
    assert.equal(r.complete, true, `response did not end cleanly: ${r.error}`);
    const ev = r.events;
    const upEvents = sseEvents(lastUp().sentText);
    assert.equal(upEvents.length, 2);
    assert.equal(ev[0].raw, upEvents[0].raw);
    assert.equal(ev[1].raw, upEvents[1].raw);
    const jsonEvents = ev.filter((e) => e.data !== '[DONE]');
    const lastJson = jsonEvents.at(-1);
    assert.ok(lastJson.json && lastJson.json.error, `last event is not an error: ${lastJson.data}`);
    assert.equal(openAIErrorShapeProblem(lastJson.json), null, openAIErrorShapeProblem(lastJson.json));
    assert.equal(ev.indexOf(lastJson), ev.length - 1 - (ev.at(-1).data === '[DONE]' ? 1 : 0));
  });

  test('truncated non-stream body → 502', async () => {
    const r = await postJSON(chatURL(), { model: 'gpt-truncate', messages: MSGS }, { timeoutMs: 10000 });
    assertOpenAIError(r, 502, 'truncate non-stream');
  });

  test('mid-stream error event reaches the client', async () => {
    const r = await readSSE(chatURL(), { body: { model: 'gpt-midstream-error', messages: MSGS, stream: true }, timeoutMs: 10000 });
    assert.equal(r.status, 200);
    assert.equal(r.complete, true);
    const ev = r.events;
    assert.equal(ev[0].json.choices[0].delta.content, 'Partial');
    const err = ev.find((e) => e.json && e.json.error);
    assert.ok(err, `no error event in ${r.text}`);
    assert.deepEqual(err.json, ERROR_BODIES.midstream);
  });
});

describe('client disconnect', () => {
  test('aborting a stream mid-way closes the upstream connection within 1 s', async () => {
    const aborted0 = s.fake.stats.aborted;
    const r = await readSSE(chatURL(), {
      body: { model: 'gpt-slow', messages: MSGS, stream: true },
      abortAfter: (d) => d.toString('utf8').includes('data:'),
    });
    const tAbort = Date.now();
    assert.equal(r.clientAborted, true);
    await s.fake.waitFor((st) => st.aborted > aborted0, 1000, 'upstream abort');
    const rec = s.fake.stats.requests.filter((x) => x.aborted).at(-1);
    assert.ok(rec.closedAt - tAbort < 1000, `upstream closed ${rec.closedAt - tAbort} ms after the client left`);
    assert.ok(rec.sent.length < 8, 'upstream should not have finished the stream');
  });

  test('aborting while waiting for the upstream headers also cancels it', async () => {
    const aborted0 = s.fake.stats.aborted;
    await assert.rejects(postJSON(chatURL(), { model: 'gpt-slow', messages: MSGS, stream: true }, { timeoutMs: 500 }));
    await s.fake.waitFor((st) => st.aborted > aborted0, 1500, 'upstream abort before headers');
  });

  test('gateway is healthy and serves after disconnects', async () => {
    await sleep(SLOW_CHUNK_INTERVAL_MS);
    const h = await request(`${s.url}/health/liveliness`);
    assert.equal(h.status, 200);
    const r = await postJSON(chatURL(), { model: 'gpt-test', messages: MSGS });
    assert.equal(r.status, 200);
  });
});

describe('mock provider', () => {
  const body = { model: 'mock', messages: [{ role: 'user', content: 'Deterministic, please.' }] };

  test('non-stream: text and usage, same request → same text', async () => {
    const n = s.fake.stats.count;
    const a = await postJSON(chatURL(), body);
    const b = await postJSON(chatURL(), body);
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200);
    assert.equal(s.fake.stats.count, n, 'mock must not call the upstream');
    const ta = a.json.choices[0].message.content;
    assert.equal(typeof ta, 'string');
    assert.ok(ta.length > 0);
    assert.equal(b.json.choices[0].message.content, ta);
    assert.equal(a.json.object, 'chat.completion');
    const u = a.json.usage;
    assert.equal(typeof u.prompt_tokens, 'number');
    assert.equal(typeof u.completion_tokens, 'number');
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert.ok(u.completion_tokens > 0);
  });

  test('stream with include_usage: same text, usage chunk, [DONE]', async () => {
    const ns = await postJSON(chatURL(), body);
    const text = ns.json.choices[0].message.content;
    const a = await readSSE(chatURL(), { body: { ...body, stream: true, stream_options: { include_usage: true } } });
    const b = await readSSE(chatURL(), { body: { ...body, stream: true, stream_options: { include_usage: true } } });
    assert.equal(a.status, 200, a.text);
    assert.equal(streamText(a.text), text);
    assert.equal(streamText(b.text), text);
    const last = sseJson(a.text).at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
    assert.equal(a.events.at(-1).data, '[DONE]');
  });

  test('stream without include_usage carries no usage chunk', async () => {
    const a = await readSSE(chatURL(), { body: { ...body, stream: true } });
    assert.equal(a.status, 200);
    assert.ok(!sseJson(a.text).some((c) => Array.isArray(c.choices) && c.choices.length === 0));
    assert.equal(a.events.at(-1).data, '[DONE]');
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
