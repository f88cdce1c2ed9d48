// End to end: the official `openai` npm SDK → Tollgate → the Anthropic adapter → a fake Anthropic
// Messages API (tests/fakes/anthropic-upstream.mjs) that validates requests like the real one.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeAnthropic, expectedOpenAIUsage, CLAUDE_REPLY, CLAUDE_TOOL_INPUTS, CLAUDE_THINKING,
} from '../fakes/anthropic-upstream.mjs';
import { assertHealthyThenCleanExit, UPSTREAM_KEY } from '../lib/harness.mjs';
import {
  MSGS, WEATHER_TOOL, TIME_TOOL, startGateway, stopGateway, collect, assertCompletion, assertSdkError, assertStreamFails,
} from './common.mjs';

const TOOLS = [WEATHER_TOOL, TIME_TOOL];

let fake;
let tg;
let client;

function deployment(name, upstream, extra = {}) {
  return { model_name: name, litellm_params: { model: `anthropic/${upstream}`, api_base: fake.url, api_key: UPSTREAM_KEY, ...extra } };
}

before(async () => {
  fake = await startFakeAnthropic();
  ({ tg, client } = await startGateway([
    deployment('claude-ok', 'claude-ok'),
    deployment('claude-v1-base', 'claude-ok', { api_base: `${fake.url}/v1` }),
    deployment('claude-tools', 'claude-tools'),
    deployment('claude-thinking', 'claude-thinking'),
    deployment('claude-overloaded', 'claude-overloaded'),
    deployment('claude-ratelimit', 'claude-ratelimit'),
    deployment('claude-toolong', 'claude-toolong'),
    deployment('claude-midstream-error', 'claude-midstream-error'),
    deployment('claude-badkey', 'claude-ok', { api_key: 'not-the-key' }),
  ]));
});

after(() => stopGateway(tg, fake));

describe('chat completions through the anthropic adapter', () => {
  test('non-stream: text, finish, usage with cache tokens; the upstream got a Messages request', async () => {
    const r = await client.chat.completions.create({ model: 'claude-ok', messages: MSGS });
    assertCompletion(r, CLAUDE_REPLY);
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
    const got = await collect(await client.chat.completions.create({ model: 'claude-thinking', messages: MSGS, stream: true }));
    assert.equal(got.reasoning, CLAUDE_THINKING);
    assert.equal(got.content, '42.');
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
    await assertSdkError(client.chat.completions.create({ model: 'claude-overloaded', messages: MSGS }), OpenAI.InternalServerError, {
      status: 503,
      code: 'overloaded',
      type: 'api_error',
      'error.message': 'Overloaded',
    });
  });

  test('429 → RateLimitError with retry-after', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'claude-ratelimit', messages: MSGS, stream: true }), OpenAI.RateLimitError, {
      headers: { 'retry-after': '3' },
      code: 'rate_limit_exceeded',
    });
  });

  test('prompt too long → BadRequestError context_length_exceeded', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'claude-toolong', messages: MSGS }), OpenAI.BadRequestError, {
      code: 'context_length_exceeded',
      param: 'messages',
    });
  });

  test('wrong upstream key → AuthenticationError', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'claude-badkey', messages: MSGS }), OpenAI.AuthenticationError, { status: 401 });
  });

  test('error event inside the stream → the SDK throws while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'claude-midstream-error', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream, { message: /Overloaded/ }), 'Partial');
  });

  test('embeddings: Anthropic has none → BadRequestError, nothing sent upstream', async () => {
    const before = fake.stats.count;
    await assertSdkError(client.embeddings.create({ model: 'claude-ok', input: 'hello' }), OpenAI.BadRequestError, { message: /no embeddings/ });
    assert.equal(fake.stats.count, before);
  });

  test('n > 1 is refused before reaching the upstream', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'claude-ok', messages: MSGS, n: 2 }), OpenAI.BadRequestError);
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(tg, assert);
});
