// The inbound surfaces through the real gateway: the official @anthropic-ai/sdk against
// POST /v1/messages (served by OpenAI-format backends: the fake OpenAI upstream and the mock), and
// the simple contract POST /v1/chat.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { FAKE_REPLY, FAKE_TOOL_CALL_ID } from '../fakes/openai-upstream.mjs';
import { startStack, assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';

const TOOLS = [
  {
    name: 'get_weather',
    description: 'Current weather',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
];

let s;
let client;

before(async () => {
  s = await startStack();
  client = new Anthropic({ baseURL: s.url, apiKey: MASTER_KEY, maxRetries: 0 });
});
after(async () => {
  if (s) await s.close();
});

describe('Anthropic SDK → /v1/messages', () => {
  test('non-stream text: Anthropic message shape, usage, and the upstream got an OpenAI request', async () => {
    const msg = await client.messages.create({
      model: 'gpt-test',
      max_tokens: 64,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'gpt-test');
    assert.equal(msg.stop_reason, 'end_turn');
    assert.deepEqual(msg.content, [{ type: 'text', text: FAKE_REPLY }]);
    assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens === 5);
    const sent = s.fake.stats.last['/v1/chat/completions'].body;
    assert.deepEqual(sent.messages[0], { role: 'system', content: 'Be brief.' });
    assert.equal(sent.max_tokens, 64);
  });

  test('stream: the SDK reassembles the text and reports usage', async () => {
    const stream = client.messages.stream({
      model: 'gpt-test',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    const deltas = [];
    stream.on('text', (t) => deltas.push(t));
    const msg = await stream.finalMessage();
    assert.equal(deltas.join(''), FAKE_REPLY);
    assert.equal(msg.content[0].text, FAKE_REPLY);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.output_tokens, 5);
  });

  for (const streaming of [false, true]) {
    test(`tool use round trip (${streaming ? 'stream' : 'non-stream'})`, async () => {
      const req = {
        model: 'gpt-tools',
        max_tokens: 64,
        tools: TOOLS,
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
      };
      const first = streaming ? await client.messages.stream(req).finalMessage() : await client.messages.create(req);
      assert.equal(first.stop_reason, 'tool_use');
      const use = first.content.find((b) => b.type === 'tool_use');
      assert.ok(use, JSON.stringify(first.content));
      assert.equal(use.id, FAKE_TOOL_CALL_ID);
      assert.equal(use.name, 'get_weather');
      assert.deepEqual(use.input, { city: 'Paris' });
      const second = await client.messages.create({
        ...req,
        messages: [
          ...req.messages,
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C sunny' }] },
        ],
      });
      assert.equal(second.content[0].text, 'Tool said: 18C sunny');
      const sent = s.fake.stats.last['/v1/chat/completions'].body;
      const toolMsg = sent.messages.find((m) => m.role === 'tool');
      assert.deepEqual(toolMsg, { role: 'tool', tool_call_id: FAKE_TOOL_CALL_ID, content: '18C sunny' });
    });
  }

  test('the in-process mock serves Anthropic clients too', async () => {
    const msg = await client.messages.create({ model: 'mock', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] });
    assert.match(msg.content[0].text, /mock response/);
  });

  test('errors come back as the SDK error classes, in Anthropic shape', async () => {
    const bad = new Anthropic({ baseURL: s.url, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(
      bad.messages.create({ model: 'gpt-test', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof Anthropic.AuthenticationError && e.error?.type === 'error' && e.error?.error?.type === 'authentication_error',
    );
    await assert.rejects(
      client.messages.create({ model: 'no-such-model', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof Anthropic.NotFoundError && e.error?.error?.type === 'not_found_error',
    );
    await assert.rejects(
      client.messages.create({ model: 'gpt-fail429', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof Anthropic.RateLimitError,
    );
    const res = await fetch(`${s.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': MASTER_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(res.status, 400, 'max_tokens is required by the Messages API');
    const body = await res.json();
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'invalid_request_error');
  });

  test('a broken upstream stream ends the Anthropic stream with an error event', async () => {
    const stream = client.messages.stream({ model: 'gpt-truncate', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] });
    await assert.rejects(stream.finalMessage());
  });
});

describe('POST /v1/chat (the simple contract)', () => {
  async function post(body, key = MASTER_KEY) {
    const res = await fetch(`${s.url}/v1/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  test('answer shape: text, provider, model, tokens, latency', async () => {
    const { status, json } = await post({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], temperature: 0.2 });
    assert.equal(status, 200);
    assert.equal(json.text, FAKE_REPLY);
    assert.equal(json.provider, 'openai');
    assert.equal(json.model, 'gpt-test');
    assert.ok(json.tokens_in > 0);
    assert.equal(json.tokens_out, 5);
    assert.equal(typeof json.latency_ms, 'number');
    assert.equal(s.fake.stats.last['/v1/chat/completions'].body.temperature, 0.2);
  });

  test('errors: {"error":{"code","message","provider"}}', async () => {
    const a = await post({ model: 'no-such', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(a.status, 404);
    assert.equal(a.json.error.code, 'model_not_found');
    assert.equal(typeof a.json.error.message, 'string');
    assert.ok('provider' in a.json.error);
    const b = await post({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] }, 'sk-wrong');
    assert.equal(b.status, 401);
    assert.equal(b.json.error.code, 'invalid_api_key');
    const c = await post({ model: 'gpt-fail500', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(c.status, 500);
    assert.equal(c.json.error.provider, 'openai');
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
