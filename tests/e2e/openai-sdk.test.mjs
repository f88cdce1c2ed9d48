// End to end with the official `openai` npm SDK pointed at Tollgate (baseURL = gateway + /v1,
// apiKey = master key), Tollgate proxying to the fake OpenAI upstream.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  FAKE_REPLY, FAKE_TOOL_CALL_ID, FAKE_TOOL_ARGS, ERROR_BODIES, fakeEmbedding, base64ToFloats, promptTokens,
} from '../fakes/openai-upstream.mjs';
import { startStack, modelNames, assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';

const MSGS = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'What is the weather in Paris?' },
];
const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];

let s;
let client;

before(async () => {
  s = await startStack();
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 20000 });
});
after(async () => {
  if (s) await s.close();
});

describe('chat completions', () => {
  test('non-stream', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-test', messages: MSGS });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, FAKE_REPLY);
    assert.equal(r.choices[0].finish_reason, 'stop');
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
    let content = '';
    let usage = null;
    let finish = null;
    let n = 0;
    for await (const chunk of stream) {
      n++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (c?.delta?.content) content += c.delta.content;
      if (c?.finish_reason) finish = c.finish_reason;
    }
    assert.equal(content, FAKE_REPLY);
    assert.equal(finish, 'stop');
    const p = promptTokens(MSGS);
    assert.deepEqual(usage, { prompt_tokens: p, completion_tokens: 5, total_tokens: p + 5 });
    assert.ok(n >= 6);
  });

  test('stream without include_usage: no usage seen', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-test', messages: MSGS, stream: true });
    let content = '';
    for await (const chunk of stream) {
      assert.ok(!chunk.usage, `unexpected usage in ${JSON.stringify(chunk)}`);
      content += chunk.choices[0]?.delta?.content || '';
    }
    assert.equal(content, FAKE_REPLY);
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
    const stream = await client.chat.completions.create({ model: 'gpt-tools', messages: MSGS, tools: TOOLS, stream: true });
    const calls = [];
    let finish = null;
    let argFragments = 0;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      for (const tc of c.delta?.tool_calls || []) {
        const cur = (calls[tc.index] ||= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (tc.id) cur.id = tc.id;
        if (tc.type) cur.type = tc.type;
        if (tc.function?.name) cur.function.name += tc.function.name;
        if (tc.function?.arguments) {
          cur.function.arguments += tc.function.arguments;
          argFragments++;
        }
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
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
    let text = '';
    for await (const chunk of stream2) text += chunk.choices[0]?.delta?.content || '';
    assert.equal(text, 'Tool said: rainy');
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
    const bad = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-not-the-key', maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: 'gpt-test', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 401);
      return true;
    });
  });

  test('unknown model → NotFoundError', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
  });

  test('upstream 400 → BadRequestError with the upstream code', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-fail400', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.code, 'context_length_exceeded');
      assert.equal(e.param, 'messages');
      return true;
    });
  });

  test('upstream 429 → RateLimitError with retry-after', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-fail429', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.headers.get('retry-after'), '7');
      assert.equal(e.error.message, ERROR_BODIES.fail429.error.message);
      return true;
    });
  });

  test('upstream 500 → InternalServerError', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-fail500', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 500);
      return true;
    });
  });

  test('mid-stream error event → the SDK throws while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-midstream-error', messages: MSGS, stream: true });
    let text = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
      })(),
      (e) => {
        assert.ok(e instanceof OpenAI.APIError, `${e.constructor.name}: ${e.message}`);
        return true;
      },
    );
    assert.equal(text, 'Partial');
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
