// End to end: the official `openai` npm SDK → Tollgate → the Anthropic adapter → a fake Anthropic
// Messages API (tests/fakes/anthropic-upstream.mjs) that validates requests like the real one.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeAnthropic, expectedOpenAIUsage, CLAUDE_REPLY, CLAUDE_TOOL_INPUTS, CLAUDE_THINKING,
} from '../fakes/anthropic-upstream.mjs';
import { startTollgate, toYaml, gatewayConfigObject, assertHealthyThenCleanExit, MASTER_KEY, UPSTREAM_KEY } from '../lib/harness.mjs';

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
  {
    type: 'function',
    function: { name: 'get_time', description: 'Local time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } },
  },
];

let fake;
let tg;
let client;

function deployment(name, upstream, extra = {}) {
  return { model_name: name, litellm_params: { model: `anthropic/${upstream}`, api_base: fake.url, api_key: UPSTREAM_KEY, ...extra } };
}

before(async () => {
  fake = await startFakeAnthropic();
  const extraModels = [
    deployment('claude-ok', 'claude-ok'),
    deployment('claude-v1-base', 'claude-ok', { api_base: `${fake.url}/v1` }),
    deployment('claude-tools', 'claude-tools'),
    deployment('claude-thinking', 'claude-thinking'),
    deployment('claude-overloaded', 'claude-overloaded'),
    deployment('claude-ratelimit', 'claude-ratelimit'),
    deployment('claude-toolong', 'claude-toolong'),
    deployment('claude-midstream-error', 'claude-midstream-error'),
    deployment('claude-badkey', 'claude-ok', { api_key: 'not-the-key' }),
  ];
  const cfg = gatewayConfigObject({ includeDefaults: false, extraModels });
  tg = await startTollgate({ config: toYaml(cfg) });
  client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 20000 });
});

after(async () => {
  if (tg && tg.alive()) await tg.stop('SIGKILL', 5000);
  if (fake) await fake.close();
});

/** Folds streamed tool-call deltas into whole calls, checking the OpenAI fragment contract. */
async function collect(stream) {
  const out = { content: '', calls: [], finish: null, usage: null, chunks: 0 };
  for await (const chunk of stream) {
    out.chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) out.usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta?.content) out.content += c.delta.content;
    for (const tc of c.delta?.tool_calls || []) {
      if (tc.id) {
        assert.equal(out.calls.length, tc.index, 'a new call takes the next index');
        assert.equal(tc.type, 'function');
        assert.equal(tc.function.arguments, '');
        out.calls.push({ id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } });
      } else {
        assert.ok(out.calls[tc.index], `fragment for unknown call ${tc.index}`);
        assert.equal(tc.function.name, undefined, 'later fragments carry arguments only');
        out.calls[tc.index].function.arguments += tc.function.arguments;
      }
    }
    if (c.finish_reason) out.finish = c.finish_reason;
  }
  return out;
}

describe('chat completions through the anthropic adapter', () => {
  test('non-stream: text, finish, usage with cache tokens; the upstream got a Messages request', async () => {
    const r = await client.chat.completions.create({ model: 'claude-ok', messages: MSGS });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, CLAUDE_REPLY);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const up = fake.stats.last;
    assert.equal(up.path, '/v1/messages');
    assert.equal(up.headers['x-api-key'], UPSTREAM_KEY);
    assert.equal(up.headers['anthropic-version'], '2023-06-01');
    assert.equal(up.headers.authorization, undefined, 'no OpenAI bearer header upstream');
    assert.deepEqual(up.body.system, [{ type: 'text', text: 'Be brief.' }]);
    assert.equal(up.body.max_tokens, 4096);
    assert.equal(up.body.model, 'claude-ok');
    assert.deepEqual(r.usage, expectedOpenAIUsage(up.body));
  });

  test('api_base given with /v1 reaches the same endpoint', async () => {
    const r = await client.chat.completions.create({ model: 'claude-v1-base', messages: MSGS, max_tokens: 50 });
    assert.equal(r.choices[0].message.content, CLAUDE_REPLY);
    assert.equal(fake.stats.last.path, '/v1/messages');
    assert.equal(fake.stats.last.body.max_tokens, 50);
  });

  test('stream with include_usage: content, finish, usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'claude-ok',
      messages: MSGS,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      stop: ['END'],
    });
    const got = await collect(stream);
    assert.equal(got.content, CLAUDE_REPLY);
    assert.equal(got.finish, 'stop');
    const up = fake.stats.last.body;
    assert.equal(up.stream, true);
    assert.deepEqual(up.stop_sequences, ['END']);
    assert.equal(up.temperature, 0.2);
    assert.deepEqual(got.usage, expectedOpenAIUsage(up));
  });

  test('stream without include_usage: no usage reaches the client', async () => {
    const stream = await client.chat.completions.create({ model: 'claude-ok', messages: MSGS, stream: true });
    const got = await collect(stream);
    assert.equal(got.content, CLAUDE_REPLY);
    assert.equal(got.usage, null);
  });

  test('SDK stream helper: finalChatCompletion()', async () => {
    const runner = client.chat.completions.stream({ model: 'claude-ok', messages: MSGS });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, CLAUDE_REPLY);
    assert.equal(final.choices[0].finish_reason, 'stop');
  });

  test('thinking blocks arrive as reasoning_content (non-stream and stream)', async () => {
    const r = await client.chat.completions.create({ model: 'claude-thinking', messages: MSGS });
    assert.equal(r.choices[0].message.content, '42.');
    assert.equal(r.choices[0].message.reasoning_content, CLAUDE_THINKING);
    const stream = await client.chat.completions.create({ model: 'claude-thinking', messages: MSGS, stream: true });
    let reasoning = '';
    let content = '';
    for await (const chunk of stream) {
      reasoning += chunk.choices[0]?.delta?.reasoning_content || '';
      content += chunk.choices[0]?.delta?.content || '';
    }
    assert.equal(reasoning, CLAUDE_THINKING);
    assert.equal(content, '42.');
  });
});

describe('tools round trip', () => {
  const expectCalls = (calls) => {
    assert.equal(calls.length, 2);
    assert.deepEqual(
      calls.map((c) => [c.id, c.type, c.function.name, JSON.parse(c.function.arguments)]),
      [
        ['toolu_fake_1', 'function', 'get_weather', CLAUDE_TOOL_INPUTS[0]],
        ['toolu_fake_2', 'function', 'get_time', CLAUDE_TOOL_INPUTS[1]],
      ],
    );
  };
  const results = (calls) => [
    { role: 'tool', tool_call_id: calls[0].id, content: '18C and sunny' },
    { role: 'tool', tool_call_id: calls[1].id, content: [{ type: 'text', text: '14:05' }] },
  ];

  test('non-stream: two calls, results back in one user turn, final answer', async () => {
    const r1 = await client.chat.completions.create({
      model: 'claude-tools', messages: MSGS, tools: TOOLS, tool_choice: 'auto', parallel_tool_calls: true,
    });
    assert.equal(r1.choices[0].finish_reason, 'tool_calls');
    const msg = r1.choices[0].message;
    assert.equal(msg.content, 'Let me check.');
    expectCalls(msg.tool_calls);
    assert.deepEqual(fake.stats.last.body.tool_choice, { type: 'auto' });
    assert.equal(fake.stats.last.body.tools[0].input_schema.required[0], 'city');

    const r2 = await client.chat.completions.create({
      model: 'claude-tools',
      tools: TOOLS,
      messages: [...MSGS, msg, ...results(msg.tool_calls), { role: 'user', content: 'Thanks!' }],
    });
    assert.equal(r2.choices[0].message.content, 'Tool said: 18C and sunny | 14:05');
    assert.equal(r2.choices[0].finish_reason, 'stop');
    const turns = fake.stats.last.body.messages;
    assert.deepEqual(turns.map((t) => t.role), ['user', 'assistant', 'user']);
    assert.deepEqual(turns[2].content.map((b) => b.type), ['tool_result', 'tool_result', 'text']);
    assert.deepEqual(turns[1].content[1].input, CLAUDE_TOOL_INPUTS[0]);
  });

  test('stream: tool-call deltas with stable indexes reassemble; the answer streams back', async () => {
    const stream = await client.chat.completions.create({
      model: 'claude-tools', messages: MSGS, tools: TOOLS, stream: true, stream_options: { include_usage: true }, parallel_tool_calls: false,
    });
    const got = await collect(stream);
    assert.equal(got.finish, 'tool_calls');
    assert.equal(got.content, 'Let me check.');
    expectCalls(got.calls);
    assert.deepEqual(fake.stats.last.body.tool_choice, { type: 'auto', disable_parallel_tool_use: true });
    assert.deepEqual(got.usage, expectedOpenAIUsage(fake.stats.last.body));

    const stream2 = await client.chat.completions.create({
      model: 'claude-tools',
      tools: TOOLS,
      stream: true,
      messages: [...MSGS, { role: 'assistant', content: got.content, tool_calls: got.calls }, ...results(got.calls)],
    });
    const got2 = await collect(stream2);
    assert.equal(got2.content, 'Tool said: 18C and sunny | 14:05');
    assert.equal(got2.finish, 'stop');
  });

  test('SDK stream helper reassembles both calls', async () => {
    const runner = client.chat.completions.stream({ model: 'claude-tools', messages: MSGS, tools: TOOLS, tool_choice: 'required' });
    const final = await runner.finalChatCompletion();
    expectCalls(final.choices[0].message.tool_calls);
    assert.deepEqual(fake.stats.last.body.tool_choice, { type: 'any' });
  });
});

describe('errors map to the SDK error classes', () => {
  test('529 overloaded → 503 InternalServerError, code overloaded', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-overloaded', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 503);
      assert.equal(e.code, 'overloaded');
      assert.equal(e.type, 'api_error');
      assert.equal(e.error.message, 'Overloaded');
      return true;
    });
  });

  test('429 → RateLimitError with retry-after', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-ratelimit', messages: MSGS, stream: true }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.headers.get('retry-after'), '3');
      assert.equal(e.code, 'rate_limit_exceeded');
      return true;
    });
  });

  test('prompt too long → BadRequestError context_length_exceeded', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-toolong', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.code, 'context_length_exceeded');
      assert.equal(e.param, 'messages');
      return true;
    });
  });

  test('wrong upstream key → AuthenticationError', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-badkey', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 401);
      return true;
    });
  });

  test('error event inside the stream → the SDK throws while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'claude-midstream-error', messages: MSGS, stream: true });
    let text = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
      })(),
      (e) => {
        assert.ok(e instanceof OpenAI.APIError, `${e.constructor.name}: ${e.message}`);
        assert.match(e.message, /Overloaded/);
        return true;
      },
    );
    assert.equal(text, 'Partial');
  });

  test('embeddings: Anthropic has none → BadRequestError, nothing sent upstream', async () => {
    const before = fake.stats.count;
    await assert.rejects(client.embeddings.create({ model: 'claude-ok', input: 'hello' }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, /no embeddings/);
      return true;
    });
    assert.equal(fake.stats.count, before);
  });

  test('n > 1 is refused before reaching the upstream', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-ok', messages: MSGS, n: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      return true;
    });
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(tg, assert);
});
