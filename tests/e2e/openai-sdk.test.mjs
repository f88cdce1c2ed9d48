// End to end with the official `openai` npm SDK pointed at Tollgate (baseURL = gateway + /v1,
// apiKey = master key), Tollgate proxying to the fake OpenAI upstream.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  FAKE_REPLY, FAKE_TOOL_CALL_ID, FAKE_TOOL_ARGS, ERROR_BODIES, fakeEmbedding, base64ToFloats, promptTokens,
} from '../fakes/openai-upstream.mjs';
import { startStack, modelNames, assertHealthyThenCleanExit } from '../lib/harness.mjs';
import { MSGS, WEATHER_TOOL, openAIClient, collect, assertCompletion, assertSdkError, assertStreamFails } from './common.mjs';

const TOOLS = [WEATHER_TOOL];

let s;
let client;

before(async () => {
  s = await startStack();
  client = openAIClient(s.url);
});
after(async () => {
  if (s) await s.close();
});

describe('chat completions', () => {
  test('non-stream', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-test', messages: MSGS });
    assertCompletion(r, FAKE_REPLY);
    const p = promptTokens(MSGS);
    assert.deepEqual(r.usage, { prompt_tokens: p, completion_tokens: 5, total_tokens: p + 5 });
  });

  test('non-stream with withResponse(): x-request-id header', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'gpt-test', messages: MSGS }).withResponse();
    assert.equal(data.choices[0].message.content, FAKE_REPLY);
    assert.ok(response.headers.get('x-request-id'));
  });

  test('stream with include_usage: content and usage from chunks', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      messages: MSGS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const got = await collect(stream);
    assert.equal(got.content, FAKE_REPLY);
    assert.equal(got.finish, 'stop');
    const p = promptTokens(MSGS);
    assert.deepEqual(got.usage, { prompt_tokens: p, completion_tokens: 5, total_tokens: p + 5 });
    assert.ok(got.chunks.length >= 6);
  });

  test('stream without include_usage: no usage seen', async () => {
    const got = await collect(await client.chat.completions.create({ model: 'gpt-test', messages: MSGS, stream: true }));
    assert.equal(got.usage, null, 'no chunk carried usage');
    assert.equal(got.content, FAKE_REPLY);
  });

  test('SDK stream helper: finalChatCompletion()', async () => {
    const runner = client.chat.completions.stream({ model: 'gpt-test', messages: MSGS, stream_options: { include_usage: true } });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, FAKE_REPLY);
  });

  test('mock model answers deterministically', async () => {
    const a = await client.chat.completions.create({ model: 'mock', messages: [{ role: 'user', content: 'same' }] });
    const b = await client.chat.completions.create({ model: 'mock', messages: [{ role: 'user', content: 'same' }] });
    assert.ok(a.choices[0].message.content.length > 0);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    assert.ok(a.usage.total_tokens > 0);
  });
});

describe('tools round trip', () => {
  test('non-stream: tool call, tool result, final answer', async () => {
    const r1 = await client.chat.completions.create({ model: 'gpt-tools', messages: MSGS, tools: TOOLS, tool_choice: 'auto' });
    assert.equal(r1.choices[0].finish_reason, 'tool_calls');
    const msg = r1.choices[0].message;
    assert.equal(msg.tool_calls.length, 1);
    const call = msg.tool_calls[0];
    assert.equal(call.id, FAKE_TOOL_CALL_ID);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

    const r2 = await client.chat.completions.create({
      model: 'gpt-tools',
      tools: TOOLS,
      messages: [...MSGS, msg, { role: 'tool', tool_call_id: call.id, content: '18C and sunny' }],
    });
    assert.equal(r2.choices[0].message.content, 'Tool said: 18C and sunny');
    assert.equal(r2.choices[0].finish_reason, 'stop');
  });

  test('stream: reassemble tool-call deltas, send the result, stream the answer', async () => {
    const { calls, finish, argFragments } = await collect(
      await client.chat.completions.create({ model: 'gpt-tools', messages: MSGS, tools: TOOLS, stream: true }),
    );
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0], { id: FAKE_TOOL_CALL_ID, type: 'function', function: { name: 'get_weather', arguments: FAKE_TOOL_ARGS } });
    assert.ok(argFragments >= 2);

    const stream2 = await client.chat.completions.create({
      model: 'gpt-tools',
      tools: TOOLS,
      stream: true,
      messages: [...MSGS, { role: 'assistant', content: null, tool_calls: calls }, { role: 'tool', tool_call_id: calls[0].id, content: 'rainy' }],
    });
    assert.equal((await collect(stream2)).content, 'Tool said: rainy');
  });

  test('SDK stream helper reassembles the tool call itself', async () => {
    const runner = client.chat.completions.stream({ model: 'gpt-tools', messages: MSGS, tools: TOOLS });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls[0];
    assert.equal(call.id, FAKE_TOOL_CALL_ID);
    assert.equal(call.function.name, 'get_weather');
    assert.equal(call.function.arguments, FAKE_TOOL_ARGS);
  });
});

describe('embeddings', () => {
  test('SDK default (base64 on the wire, decoded by the SDK)', async () => {
    const r = await client.embeddings.create({ model: 'text-embedding-test', input: 'hello embeddings' });
    assert.equal(s.fake.stats.last['/v1/embeddings'].body.encoding_format, 'base64');
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0].embedding.length, 8);
    assert.deepEqual(r.data[0].embedding, fakeEmbedding('hello embeddings'));
  });

  test('encoding_format float, several inputs', async () => {
    const r = await client.embeddings.create({ model: 'text-embedding-test', input: ['a', 'b', 'c'], encoding_format: 'float' });
    assert.equal(r.data.length, 3);
    r.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assert.deepEqual(d.embedding, fakeEmbedding(['a', 'b', 'c'][i]));
    });
    assert.equal(typeof r.usage.prompt_tokens, 'number');
  });

  test('encoding_format base64 requested explicitly: the string decodes to the same floats', async () => {
    const r = await client.embeddings.create({ model: 'text-embedding-test', input: 'x', encoding_format: 'base64' });
    assert.equal(typeof r.data[0].embedding, 'string');
    assert.deepEqual(base64ToFloats(r.data[0].embedding), fakeEmbedding('x'));
  });
});

test('models.list()', async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    ids.push(m.id);
    assert.equal(m.object, 'model');
  }
  assert.deepEqual(ids.sort(), [...modelNames(s.cfg)].sort());
});

describe('errors map to the SDK error classes', () => {
  test('bad key → AuthenticationError', async () => {
    const bad = openAIClient(s.url, 'sk-not-the-key');
    await assertSdkError(bad.chat.completions.create({ model: 'gpt-test', messages: MSGS }), OpenAI.AuthenticationError, { status: 401 });
  });

  test('unknown model → NotFoundError', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'no-such-model', messages: MSGS }), OpenAI.NotFoundError, { code: 'model_not_found' });
  });

  test('upstream 400 → BadRequestError with the upstream code', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gpt-fail400', messages: MSGS }), OpenAI.BadRequestError, {
      code: 'context_length_exceeded',
      param: 'messages',
    });
  });

  test('upstream 429 → RateLimitError with retry-after', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gpt-fail429', messages: MSGS }), OpenAI.RateLimitError, {
      headers: { 'retry-after': '7' },
      'error.message': ERROR_BODIES.fail429.error.message,
    });
  });

  test('upstream 500 → InternalServerError', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gpt-fail500', messages: MSGS }), OpenAI.InternalServerError, { status: 500 });
  });

  test('mid-stream error event → the SDK throws while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-midstream-error', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream), 'Partial');
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
