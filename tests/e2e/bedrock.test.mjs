// End to end: the official `openai` npm SDK → Tollgate → the Bedrock adapter → a fake Bedrock
// Runtime (tests/fakes/bedrock-upstream.mjs) that verifies every SigV4 signature, validates
// Converse bodies like the real service and streams binary event-stream frames cut across reads.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeBedrock, expectedOpenAIUsage, fakeBedrockEmbedding, FAKE_AWS_CREDS, FAKE_BEDROCK_API_KEY, BEDROCK_REPLY,
  BEDROCK_TOOL_INPUTS, EMBED_DIMS,
} from '../fakes/bedrock-upstream.mjs';
import { assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';
import {
  MSGS, WEATHER_TOOL, TIME_TOOL, startGateway, stopGateway, collect, assertCompletion, assertSdkError, assertStreamFails,
} from './common.mjs';

const TOOLS = [WEATHER_TOOL, TIME_TOOL];

let fake;
let tg;
let client;

function deployment(name, upstream, extra = {}) {
  return {
    model_name: name,
    litellm_params: {
      model: `bedrock/${upstream}`,
      api_base: fake.url,
      aws_access_key_id: FAKE_AWS_CREDS.accessKeyId,
      aws_secret_access_key: FAKE_AWS_CREDS.secretAccessKey,
      aws_region_name: FAKE_AWS_CREDS.region,
      ...extra,
    },
  };
}

before(async () => {
  fake = await startFakeBedrock();
  ({ tg, client } = await startGateway([
    deployment('br-ok', 'anthropic.claude-ok-v1:0'),
    deployment('br-session', 'converse/anthropic.claude-ok-v1:0', { aws_session_token: FAKE_AWS_CREDS.sessionToken }),
    {
      model_name: 'br-bearer',
      litellm_params: { model: 'bedrock/anthropic.claude-ok-v1:0', api_base: fake.url, api_key: FAKE_BEDROCK_API_KEY, aws_region_name: 'us-west-2' },
    },
    deployment('br-tools', 'anthropic.claude-tools-v1:0'),
    deployment('br-throttle', 'anthropic.claude-throttle-v1:0'),
    deployment('br-toolong', 'anthropic.claude-toolong-v1:0'),
    deployment('br-notready', 'anthropic.claude-notready-v1:0'),
    deployment('br-midstream', 'anthropic.claude-midstream-v1:0'),
    deployment('br-badsecret', 'anthropic.claude-ok-v1:0', { aws_secret_access_key: 'not-the-secret' }),
    deployment('br-titan', 'amazon.titan-embed-text-v2:0'),
    deployment('br-cohere', 'cohere.embed-english-v3'),
  ]));
});

after(() => stopGateway(tg, fake));

function assertSigned(up, { token = false } = {}) {
  const auth = up.headers.authorization;
  const signed = token ? 'content-type;host;x-amz-date;x-amz-security-token' : 'content-type;host;x-amz-date';
  assert.match(auth, new RegExp(`^AWS4-HMAC-SHA256 Credential=${FAKE_AWS_CREDS.accessKeyId}/\\d{8}/us-west-2/bedrock/aws4_request, SignedHeaders=${signed}, Signature=[0-9a-f]{64}$`));
  assert.match(up.headers['x-amz-date'], /^\d{8}T\d{6}Z$/);
  assert.equal(up.headers['content-type'], 'application/json');
}

describe('chat completions through the bedrock adapter', () => {
  test('non-stream: text, finish, usage with cache reads; the upstream got a signed Converse request', async () => {
    const r = await client.chat.completions.create({ model: 'br-ok', messages: MSGS, max_tokens: 100, temperature: 0.5 });
    assertCompletion(r, BEDROCK_REPLY);
    assert.equal(r.model, 'br-ok');
    const up = fake.stats.last;
    assert.equal(up.path, '/model/anthropic.claude-ok-v1%3A0/converse');
    assertSigned(up);
    assert.equal(up.headers['x-amz-security-token'], undefined);
    assert.deepEqual(up.body.system, [{ text: 'Be brief.' }]);
    assert.deepEqual(up.body.messages, [{ role: 'user', content: [{ text: 'What is the weather in Paris?' }] }]);
    assert.deepEqual(up.body.inferenceConfig, { maxTokens: 100, temperature: 0.5 });
    assert.deepEqual(r.usage, expectedOpenAIUsage(up.body));
  });

  test('session token: x-amz-security-token sent and signed; "converse/" model prefix stripped', async () => {
    const r = await client.chat.completions.create({ model: 'br-session', messages: MSGS });
    assert.equal(r.choices[0].message.content, BEDROCK_REPLY);
    const up = fake.stats.last;
    assert.equal(up.path, '/model/anthropic.claude-ok-v1%3A0/converse');
    assert.equal(up.headers['x-amz-security-token'], FAKE_AWS_CREDS.sessionToken);
    assertSigned(up, { token: true });
  });

  test('a Bedrock API key goes as a bearer token, unsigned', async () => {
    const r = await client.chat.completions.create({ model: 'br-bearer', messages: MSGS });
    assert.equal(r.choices[0].message.content, BEDROCK_REPLY);
    assert.equal(fake.stats.last.headers.authorization, `Bearer ${FAKE_BEDROCK_API_KEY}`);
    assert.equal(fake.stats.last.headers['x-amz-date'], undefined);
  });

  test('stream with include_usage: content, finish, usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'br-ok',
      messages: MSGS,
      stream: true,
      stream_options: { include_usage: true },
      stop: ['END'],
    });
    const got = await collect(stream);
    assert.equal(got.content, BEDROCK_REPLY);
    assert.equal(got.finish, 'stop');
    const up = fake.stats.last;
    assert.equal(up.path, '/model/anthropic.claude-ok-v1%3A0/converse-stream');
    assertSigned(up);
    assert.deepEqual(up.body.inferenceConfig, { stopSequences: ['END'] });
    assert.deepEqual(got.usage, expectedOpenAIUsage(up.body));
    assert.ok(got.chunks.length >= 7, `${got.chunks.length} chunks`);
  });

  test('stream without include_usage: no usage reaches the client', async () => {
    const stream = await client.chat.completions.create({ model: 'br-ok', messages: MSGS, stream: true });
    const got = await collect(stream);
    assert.equal(got.content, BEDROCK_REPLY);
    assert.equal(got.usage, null);
  });

  test('SDK stream helper: finalChatCompletion()', async () => {
    const runner = client.chat.completions.stream({ model: 'br-ok', messages: MSGS, stream_options: { include_usage: true } });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, BEDROCK_REPLY);
    assert.equal(final.usage.prompt_tokens, expectedOpenAIUsage(fake.stats.last.body).prompt_tokens);
  });
});

describe('tools round trip', () => {
  const ask = [{ role: 'user', content: 'Weather and time in Paris?' }];

  function secondTurn(calls, content = null) {
    return [
      ...ask,
      { role: 'assistant', content, tool_calls: calls },
      { role: 'tool', tool_call_id: calls[0].id, content: '18C and sunny' },
      { role: 'tool', tool_call_id: calls[1].id, content: '14:05' },
    ];
  }

  test('non-stream: two tool calls, both results, final answer', async () => {
    const r1 = await client.chat.completions.create({ model: 'br-tools', messages: ask, tools: TOOLS, tool_choice: 'auto' });
    assert.equal(r1.choices[0].finish_reason, 'tool_calls');
    const msg = r1.choices[0].message;
    assert.equal(msg.content, 'Let me check.');
    assert.equal(msg.tool_calls.length, 2);
    msg.tool_calls.forEach((c, i) => {
      assert.equal(c.id, `tooluse_fake_${i + 1}`);
      assert.equal(c.type, 'function');
      assert.equal(c.function.name, TOOLS[i].function.name);
      assert.deepEqual(JSON.parse(c.function.arguments), BEDROCK_TOOL_INPUTS[i]);
    });
    const up1 = fake.stats.last.body;
    assert.deepEqual(up1.toolConfig.toolChoice, { auto: {} });
    assert.deepEqual(up1.toolConfig.tools[0].toolSpec.inputSchema.json, TOOLS[0].function.parameters);

    const r2 = await client.chat.completions.create({ model: 'br-tools', messages: secondTurn(msg.tool_calls, msg.content), tools: TOOLS });
    assert.equal(r2.choices[0].finish_reason, 'stop');
    assert.equal(r2.choices[0].message.content, 'Tool said: 18C and sunny | 14:05');
    const turns = fake.stats.last.body.messages;
    assert.deepEqual(turns.map((t) => t.role), ['user', 'assistant', 'user']);
    assert.deepEqual(turns[1].content[1], { toolUse: { toolUseId: 'tooluse_fake_1', name: 'get_weather', input: BEDROCK_TOOL_INPUTS[0] } });
    assert.deepEqual(turns[2].content.map((b) => b.toolResult.toolUseId), ['tooluse_fake_1', 'tooluse_fake_2']);
  });

  test('stream: tool-call deltas reassemble with stable indices, then the streamed answer', async () => {
    const s1 = await client.chat.completions.create({
      model: 'br-tools', messages: ask, tools: TOOLS, tool_choice: 'required', stream: true, stream_options: { include_usage: true },
    });
    const got = await collect(s1);
    assert.equal(got.finish, 'tool_calls');
    assert.equal(got.content, 'Let me check.');
    assert.equal(got.calls.length, 2);
    got.calls.forEach((c, i) => {
      assert.equal(c.id, `tooluse_fake_${i + 1}`);
      assert.equal(c.function.name, TOOLS[i].function.name);
      assert.deepEqual(JSON.parse(c.function.arguments), BEDROCK_TOOL_INPUTS[i]);
    });
    assert.deepEqual(fake.stats.last.body.toolConfig.toolChoice, { any: {} });
    assert.deepEqual(got.usage, expectedOpenAIUsage(fake.stats.last.body));

    const s2 = await client.chat.completions.create({ model: 'br-tools', messages: secondTurn(got.calls), tools: TOOLS, stream: true });
    const final = await collect(s2);
    assert.equal(final.content, 'Tool said: 18C and sunny | 14:05');
    assert.equal(final.finish, 'stop');
  });
});

describe('embeddings', () => {
  test('Titan, one input, float and the SDK default (base64)', async () => {
    const f = await client.embeddings.create({ model: 'br-titan', input: 'hello world', encoding_format: 'float' });
    assert.equal(f.object, 'list');
    assert.equal(f.data.length, 1);
    // JSON carries float32 values with 9 significant digits: exact once read back as float32
    assert.deepEqual(f.data[0].embedding.map(Math.fround), fakeBedrockEmbedding('hello world'));
    assert.equal(f.usage.prompt_tokens, Math.ceil('hello world'.length / 4));
    const up = fake.stats.last;
    assert.equal(up.path, '/model/amazon.titan-embed-text-v2%3A0/invoke');
    assert.deepEqual(up.body, { inputText: 'hello world' });
    assertSigned(up);

    const b = await client.embeddings.create({ model: 'br-titan', input: ['hello world'] });
    assert.deepEqual(b.data[0].embedding, fakeBedrockEmbedding('hello world'), 'base64 decodes to the same floats');
  });

  test('Titan with several inputs → BadRequestError, nothing sent upstream', async () => {
    const before = fake.stats.count;
    await assertSdkError(client.embeddings.create({ model: 'br-titan', input: ['a', 'b'] }), OpenAI.BadRequestError, { message: /one input per request/ });
    assert.equal(fake.stats.count, before);
  });

  test('Cohere, several inputs', async () => {
    const r = await client.embeddings.create({ model: 'br-cohere', input: ['first', 'second'], encoding_format: 'float' });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[1].index, 1);
    assert.equal(r.data[1].embedding.length, EMBED_DIMS);
    assert.deepEqual(r.data[1].embedding.map(Math.fround), fakeBedrockEmbedding('second'));
    assert.deepEqual(fake.stats.last.body, { texts: ['first', 'second'], input_type: 'search_document' });
  });
});

describe('errors', () => {
  const cases = [
    ['br-throttle', OpenAI.RateLimitError, 429, /Too many requests/, null],
    ['br-toolong', OpenAI.BadRequestError, 400, /Input is too long/, 'context_length_exceeded'],
    ['br-notready', OpenAI.InternalServerError, 503, /not ready/, 'ModelNotReadyException'],
    ['br-badsecret', OpenAI.PermissionDeniedError, 403, /signature we calculated does not match/, null],
  ];
  for (const [model, cls, status, message, code] of cases) {
    test(`${model}: HTTP ${status} → ${cls.name}`, async () => {
      await assertSdkError(client.chat.completions.create({ model, messages: MSGS }), cls, { status, message }, (e) => assert.equal(e.code ?? null, code));
    });
  }

  test('a streamed request that fails before the stream starts is a plain HTTP error', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'br-throttle', messages: MSGS, stream: true }), OpenAI.RateLimitError);
  });

  test('an exception frame inside the stream surfaces as an APIError after the partial text', async () => {
    const stream = await client.chat.completions.create({ model: 'br-midstream', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream, { message: /Too many tokens/ }), 'Partial');
  });

  test('a remote image URL is refused before reaching the upstream', async () => {
    const before = fake.stats.count;
    const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }];
    await assertSdkError(client.chat.completions.create({ model: 'br-ok', messages }), OpenAI.BadRequestError);
    assert.equal(fake.stats.count, before);
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY, FAKE_AWS_CREDS.secretAccessKey, FAKE_AWS_CREDS.sessionToken, FAKE_BEDROCK_API_KEY]);
});
