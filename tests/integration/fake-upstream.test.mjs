// Self-test of the fake OpenAI upstream and the harness's SSE parser (no tollgate binary needed).
// If these fail, every gateway test built on them is meaningless.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startFakeOpenAI, FAKE_REPLY, FAKE_REPLY_PIECES, FAKE_TOOL_CALL_ID, FAKE_TOOL_ARGS, ERROR_BODIES,
  HTML_502_BODY, fakeEmbedding, floatsToBase64, base64ToFloats, MANY_CHUNKS, promptTokens,
} from '../fakes/openai-upstream.mjs';
import { request, readSSE, sseEvents, sseJson, streamText, openAIErrorShapeProblem, sleep } from '../lib/harness.mjs';

const KEY = 'fake-key';
const MSGS = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello!' }];
const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

let fake;
before(async () => {
  fake = await startFakeOpenAI({ port: 0 });
});
after(async () => {
  await fake.close();
});

const chat = (body, opts = {}) => request(`${fake.url}/chat/completions`, { method: 'POST', body, headers: { authorization: `Bearer ${KEY}` }, ...opts });
const chatSSE = (body, opts = {}) => readSSE(`${fake.url}/chat/completions`, { body, key: KEY, ...opts });

describe('fake upstream', () => {
  test('requires Bearer fake-key, OpenAI error shape', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }]) {
      const r = await request(`${fake.url}/chat/completions`, { method: 'POST', body: { model: 'ok', messages: MSGS }, headers });
      assert.equal(r.status, 401);
      assert.equal(openAIErrorShapeProblem(r.json), null);
      assert.deepEqual(r.json, ERROR_BODIES.unauthorized);
    }
  });

  test('models list with and without /v1', async () => {
    for (const u of [`${fake.url}/models`, `${fake.base}/models`]) {
      const r = await request(u, { headers: { authorization: `Bearer ${KEY}` } });
      assert.equal(r.status, 200);
      assert.equal(r.json.object, 'list');
      assert.ok(r.json.data.some((m) => m.id === 'ok' && m.object === 'model' && typeof m.created === 'number' && m.owned_by === 'fake'));
    }
  });

  test('ok non-stream: deterministic reply and usage', async () => {
    const r = await chat({ model: 'ok', messages: MSGS });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /application\/json/);
    const j = r.json;
    assert.equal(j.object, 'chat.completion');
    assert.equal(j.model, 'ok');
    assert.equal(j.choices[0].message.content, FAKE_REPLY);
    assert.equal(j.choices[0].finish_reason, 'stop');
    const p = Math.ceil(('Be brief.'.length + 'Say hello!'.length) / 4);
    assert.equal(p, promptTokens(MSGS));
    assert.deepEqual(j.usage, { prompt_tokens: p, completion_tokens: 5, total_tokens: p + 5 });
    assert.deepEqual(fake.stats.last['/v1/chat/completions'].body, { model: 'ok', messages: MSGS });
    assert.ok(fake.stats.last['/chat/completions'] === fake.stats.last['/v1/chat/completions']);
    assert.equal(fake.stats.last['/v1/chat/completions'].sentText, r.text);
  });

  test('ok without /v1 prefix', async () => {
    const r = await request(`${fake.base}/chat/completions`, { method: 'POST', body: { model: 'ok', messages: MSGS }, headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(r.status, 200);
    assert.equal(r.json.choices[0].message.content, FAKE_REPLY);
  });

  test('ok stream without include_usage: no usage anywhere, [DONE] last', async () => {
    const r = await chatSSE({ model: 'ok', messages: MSGS, stream: true });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/event-stream/);
    const ev = r.events;
    assert.equal(ev.at(-1).data, '[DONE]');
    const chunks = ev.slice(0, -1).map((e) => e.json);
    assert.equal(chunks.length, 1 + FAKE_REPLY_PIECES.length + 1);
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.equal(streamText(r.text), FAKE_REPLY);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    for (const c of chunks) {
      assert.equal('usage' in c, false);
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, chunks[0].id);
    }
    assert.equal(r.text, fake.stats.last['/v1/chat/completions'].sentText);
  });

  test('ok stream with include_usage: usage:null on every chunk, choices:[] usage chunk before [DONE]', async () => {
    const r = await chatSSE({ model: 'ok', messages: MSGS, stream: true, stream_options: { include_usage: true } });
    const chunks = sseJson(r.text);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: promptTokens(MSGS), completion_tokens: 5, total_tokens: promptTokens(MSGS) + 5 });
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
  });

  test('tools non-stream: call, then "Tool said"', async () => {
    const r1 = await chat({ model: 'tools', messages: MSGS, tools: TOOLS });
    const m = r1.json.choices[0].message;
    assert.equal(r1.json.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(m.tool_calls, [{ id: FAKE_TOOL_CALL_ID, type: 'function', function: { name: 'get_weather', arguments: FAKE_TOOL_ARGS } }]);
    const r2 = await chat({
      model: 'tools',
      tools: TOOLS,
      messages: [...MSGS, { role: 'assistant', content: null, tool_calls: m.tool_calls }, { role: 'tool', tool_call_id: FAKE_TOOL_CALL_ID, content: '18C sunny' }],
    });
    assert.equal(r2.json.choices[0].message.content, 'Tool said: 18C sunny');
    assert.equal(r2.json.choices[0].finish_reason, 'stop');
  });

  test('tools stream: tool-call deltas reassemble', async () => {
    const r = await chatSSE({ model: 'tools', messages: MSGS, tools: TOOLS, stream: true, stream_options: { include_usage: true } });
    const chunks = sseJson(r.text);
    const first = chunks[0].choices[0].delta.tool_calls[0];
    assert.deepEqual(first, { index: 0, id: FAKE_TOOL_CALL_ID, type: 'function', function: { name: 'get_weather', arguments: '' } });
    let args = '';
    let fragments = 0;
    for (const c of chunks) {
      for (const tc of c.choices[0]?.delta?.tool_calls || []) {
        if (tc.function?.arguments) {
          args += tc.function.arguments;
          fragments++;
        }
      }
    }
    assert.ok(fragments >= 2);
    assert.equal(args, FAKE_TOOL_ARGS);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(chunks.at(-1).choices, []);
    const r2 = await chatSSE({ model: 'tools', tools: TOOLS, stream: true, messages: [...MSGS, { role: 'tool', tool_call_id: FAKE_TOOL_CALL_ID, content: 'rainy' }] });
    assert.equal(streamText(r2.text), 'Tool said: rainy');
  });

  test('slow: headers after 1.5 s, chunks 200 ms apart', async () => {
    const r = await chatSSE({ model: 'slow', messages: MSGS, stream: true });
    assert.ok(r.tHeaders - r.tStart >= 1400, `headers after ${r.tHeaders - r.tStart} ms`);
    assert.ok(r.chunks.length >= 5);
    assert.ok(r.chunks.at(-1).t - r.chunks[0].t >= 800);
    assert.equal(streamText(r.text), FAKE_REPLY);
  });

  test('error modes', async () => {
    let r = await chat({ model: 'fail500', messages: MSGS });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, ERROR_BODIES.fail500);
    r = await chat({ model: 'fail429', messages: MSGS, stream: true });
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '7');
    assert.deepEqual(r.json, ERROR_BODIES.fail429);
    r = await chat({ model: 'fail400', messages: MSGS });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'context_length_exceeded');
    r = await chat({ model: 'html502', messages: MSGS });
    assert.equal(r.status, 502);
    assert.match(r.headers['content-type'], /text\/html/);
    assert.equal(r.text, HTML_502_BODY);
    r = await chat({ model: 'nope', messages: MSGS });
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'model_not_found');
    r = await request(`${fake.url}/chat/completions`, { method: 'POST', body: '{bad', headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(r.status, 400);
  });

  test('truncate: stream breaks after two chunks without [DONE]; non-stream is cut short', async () => {
    const r = await chatSSE({ model: 'truncate', messages: MSGS, stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.complete, false);
    assert.equal(r.events.length, 2);
    assert.ok(!r.text.includes('[DONE]'));
    const n = await chat({ model: 'truncate', messages: MSGS });
    assert.equal(n.status, 200);
    assert.equal(n.complete, false);
    assert.ok(n.body.length < Number(n.headers['content-length']));
    assert.equal(fake.stats.last['/v1/chat/completions'].selfDestroyed, true);
  });

  test('midstream-error: one chunk, error event, [DONE]', async () => {
    const r = await chatSSE({ model: 'midstream-error', messages: MSGS, stream: true });
    assert.equal(r.events.length, 3);
    assert.equal(r.events[0].json.choices[0].delta.content, 'Partial');
    assert.deepEqual(r.events[1].json, ERROR_BODIES.midstream);
    assert.equal(r.events[2].data, '[DONE]');
  });

  test('many: 200 ordered content chunks', async () => {
    const r = await chatSSE({ model: 'many', messages: MSGS, stream: true, stream_options: { include_usage: true } });
    const text = streamText(r.text);
    assert.equal(text, Array.from({ length: MANY_CHUNKS }, (_, i) => `${i} `).join(''));
    assert.equal(sseJson(r.text).at(-1).usage.completion_tokens, MANY_CHUNKS);
  });

  test('embeddings float and base64 agree', async () => {
    const u = `${fake.url}/embeddings`;
    const h = { authorization: `Bearer ${KEY}` };
    const f = await request(u, { method: 'POST', body: { model: 'ok', input: ['hello', 'world'] }, headers: h });
    assert.equal(f.status, 200);
    assert.equal(f.json.object, 'list');
    assert.equal(f.json.data.length, 2);
    assert.deepEqual(f.json.data[0].embedding, fakeEmbedding('hello'));
    assert.equal(f.json.data[0].embedding.length, 8);
    const b = await request(u, { method: 'POST', body: { model: 'ok', input: 'hello', encoding_format: 'base64' }, headers: h });
    assert.equal(typeof b.json.data[0].embedding, 'string');
    assert.deepEqual(base64ToFloats(b.json.data[0].embedding), fakeEmbedding('hello'));
    assert.equal(floatsToBase64([0.5, 1.0]), 'AAAAPwAAgD8=');
    assert.equal(floatsToBase64([0.25, -1.5, 2.0]), 'AACAPgAAwL8AAABA');
  });

  test('client disconnect is counted as aborted', async () => {
    const before = fake.stats.aborted;
    const r = await chatSSE({ model: 'slow', messages: MSGS, stream: true }, { abortAfter: () => true });
    assert.equal(r.clientAborted, true);
    await fake.waitFor((s) => s.aborted === before + 1, 1000, 'aborted count');
    // hang: abort on the client side by timeout
    const before2 = fake.stats.aborted;
    await assert.rejects(chat({ model: 'hang', messages: MSGS }, { timeoutMs: 200 }));
    await fake.waitFor((s) => s.aborted === before2 + 1, 1000, 'aborted count after hang');
    await sleep(10);
    assert.equal(fake.stats.active, 0);
  });

  test('records every request', async () => {
    const n = fake.stats.count;
    await chat({ model: 'ok', messages: MSGS, x_custom: { a: [1, 2] } });
    assert.equal(fake.stats.count, n + 1);
    const rec = fake.stats.requests.at(-1);
    assert.deepEqual(rec.body.x_custom, { a: [1, 2] });
    assert.equal(rec.headers.authorization, 'Bearer fake-key');
    assert.equal(rec.status, 200);
  });
});

describe('harness SSE parser', () => {
  test('LF, CRLF, CR, comments, multi-line data, [DONE]', () => {
    const t = ': keep-alive\n\ndata: {"a":1}\n\ndata:{"b":2}\r\n\r\ndata: x\rdata: y\r\revent: e\ndata: z\n\ndata: [DONE]\n\n';
    const ev = sseEvents(t);
    assert.deepEqual(ev.map((e) => e.data), ['{"a":1}', '{"b":2}', 'x\ny', 'z', '[DONE]']);
    assert.deepEqual(ev[0].json, { a: 1 });
    assert.equal(ev[3].event, 'e');
    assert.equal(ev[0].raw, 'data: {"a":1}\n\n');
    assert.equal(ev.incomplete, false);
  });

  test('unterminated last block is not an event', () => {
    const ev = sseEvents('data: {"a":1}\n\ndata: {"b"');
    assert.equal(ev.length, 1);
    assert.equal(ev.incomplete, true);
  });

  test('raw blocks concatenate back to the body', () => {
    const t = 'data: 1\n\n: c\ndata: 2\n\ndata: [DONE]\n\n';
    assert.equal(sseEvents(t).map((e) => e.raw).join(''), t);
  });
});
