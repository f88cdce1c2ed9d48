// End to end through the real gateway with the official `openai` npm SDK, Tollgate translating to
// a fake Gemini API (tests/fakes/gemini-upstream.mjs) that speaks Gemini's wire format: chat
// (non-stream and SSE), tool calls both ways with thought signatures carried in tool-call ids,
// embeddings in float and base64, and Google's errors surfacing as the SDK's error classes.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeGemini, FAKE_GEMINI_KEY, GEMINI_REPLY, GEMINI_THOUGHTS, GEMINI_SIGNATURE, GEMINI_TOOL_ARGS,
  GEMINI_MODEL_VERSION, GEMINI_ERRORS, geminiPromptTokens, geminiEmbedding,
} from '../fakes/gemini-upstream.mjs';
import { assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';
import { MSGS, startGateway, stopGateway, collect, assertCompletion, assertSdkError, assertStreamFails } from './common.mjs';

// Gemini rejects some JSON-Schema keys: this tool's schema carries them, for the adapter to clean.
const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather',
      parameters: {
        $schema: 'http://json-schema.org/draft-07/schema#',
        type: 'object',
        properties: { city: { type: 'string' }, unit: { type: ['string', 'null'], enum: ['C', 'F'] } },
        required: ['city'],
        additionalProperties: false,
      },
    },
  },
];

let fake;
let tg;
let client;

function deployment(name, model, extra = {}) {
  return { model_name: name, litellm_params: { model: `gemini/${model}`, api_base: fake.url, api_key: FAKE_GEMINI_KEY, ...extra } };
}

before(async () => {
  fake = await startFakeGemini();
  ({ tg, client } = await startGateway([
    deployment('gem', 'gemini-ok'),
    deployment('gem-tools', 'gemini-tools'),
    deployment('gem-429', 'gemini-fail429'),
    deployment('gem-400', 'gemini-fail400'),
    deployment('gem-503', 'gemini-fail503'),
    deployment('gem-missing', 'gemini-9000'),
    deployment('gem-midstream', 'gemini-midstream-error'),
    deployment('gem-truncate', 'gemini-truncate'),
    deployment('gem-blocked', 'gemini-blocked'),
    deployment('gem-badkey', 'gemini-ok', { api_key: 'not-the-key' }),
    deployment('gem-embed', 'gemini-embedding-001'),
  ]));
});

after(() => stopGateway(tg, fake));

/** The upstream request of the latest call, checked for Gemini's URL and auth. */
function lastUpstream(model, method) {
  const r = fake.last();
  assert.equal(r.path.split('?')[0], `/v1beta/models/${model}:${method}`);
  assert.equal(r.headers['x-goog-api-key'], FAKE_GEMINI_KEY);
  assert.equal(r.headers.authorization, undefined, 'no OpenAI bearer header goes to Gemini');
  return r;
}

describe('chat', () => {
  test('non-stream: generateContent, systemInstruction, usage', async () => {
    const r = await client.chat.completions.create({ model: 'gem', messages: MSGS, temperature: 0.2, max_tokens: 64 });
    const up = lastUpstream('gemini-ok', 'generateContent');
    assert.deepEqual(up.body.systemInstruction, { parts: [{ text: 'Be brief.' }] });
    assert.deepEqual(up.body.contents, [{ role: 'user', parts: [{ text: 'What is the weather in Paris?' }] }]);
    assert.deepEqual(up.body.generationConfig, { temperature: 0.2, maxOutputTokens: 64 });
    assertCompletion(r, GEMINI_REPLY);
    assert.match(r.id, /^chatcmpl-fake-resp-\d+$/);
    assert.equal(r.model, GEMINI_MODEL_VERSION);
    const p = geminiPromptTokens(up.body);
    assert.equal(r.usage.prompt_tokens, p);
    assert.equal(r.usage.completion_tokens, 3 + GEMINI_THOUGHTS);
    assert.equal(r.usage.total_tokens, p + 3 + GEMINI_THOUGHTS);
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, GEMINI_THOUGHTS);
  });

  test('stream with include_usage: alt=sse, CRLF events, usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'gem',
      messages: MSGS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const out = await collect(stream);
    const up = lastUpstream('gemini-ok', 'streamGenerateContent');
    assert.equal(up.alt, 'sse');
    assert.equal(out.content, GEMINI_REPLY);
    assert.equal(out.finish, 'stop');
    assert.equal(out.ids.size, 1, 'one id for the whole stream');
    const p = geminiPromptTokens(up.body);
    assert.deepEqual(
      { prompt: out.usage?.prompt_tokens, completion: out.usage?.completion_tokens, total: out.usage?.total_tokens },
      { prompt: p, completion: 3 + GEMINI_THOUGHTS, total: p + 3 + GEMINI_THOUGHTS },
    );
  });

  test('stream without include_usage: no usage chunk reaches the client', async () => {
    const stream = await client.chat.completions.create({ model: 'gem', messages: MSGS, stream: true });
    const out = await collect(stream);
    assert.equal(out.content, GEMINI_REPLY);
    assert.equal(out.usage, null);
  });

  test('SDK stream helper: finalChatCompletion()', async () => {
    const runner = client.chat.completions.stream({ model: 'gem', messages: MSGS });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, GEMINI_REPLY);
    assert.equal(final.choices[0].finish_reason, 'stop');
  });

  test('blocked prompt → finish_reason content_filter', async () => {
    const r = await client.chat.completions.create({ model: 'gem-blocked', messages: MSGS });
    assert.equal(r.choices[0].finish_reason, 'content_filter');
    assert.equal(r.choices[0].message.content, '');
  });
});

describe('tools round trip', () => {
  test('non-stream: functionCall → tool_calls, tool result → functionResponse, final answer', async () => {
    const r1 = await client.chat.completions.create({ model: 'gem-tools', messages: MSGS, tools: TOOLS, tool_choice: 'required' });
    const up1 = lastUpstream('gemini-tools', 'generateContent');
    const decl = up1.body.tools[0].functionDeclarations[0];
    assert.equal(decl.name, 'get_weather');
    assert.equal(decl.parameters.$schema, undefined, 'JSON-Schema keys Gemini rejects are stripped');
    assert.equal(decl.parameters.additionalProperties, undefined);
    assert.deepEqual(decl.parameters.properties.unit, { type: 'string', nullable: true, enum: ['C', 'F'] });
    assert.deepEqual(up1.body.toolConfig, { functionCallingConfig: { mode: 'ANY' } });

    assert.equal(r1.choices[0].finish_reason, 'tool_calls');
    const msg = r1.choices[0].message;
    assert.equal(msg.content, null);
    assert.equal(msg.tool_calls.length, 1);
    const call = msg.tool_calls[0];
    assert.match(call.id, /^call_[0-9a-f]{16}_0__thought__/);
    assert.ok(call.id.endsWith(GEMINI_SIGNATURE), 'the thought signature travels in the id');
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), GEMINI_TOOL_ARGS);

    const r2 = await client.chat.completions.create({
      model: 'gem-tools',
      tools: TOOLS,
      messages: [...MSGS, msg, { role: 'tool', tool_call_id: call.id, content: '18C and sunny' }],
    });
    const up2 = lastUpstream('gemini-tools', 'generateContent');
    assert.deepEqual(up2.body.contents.slice(1), [
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: GEMINI_TOOL_ARGS }, thoughtSignature: GEMINI_SIGNATURE }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { content: '18C and sunny' } } }] },
    ]);
    assert.equal(r2.choices[0].message.content, 'Tool said: {"content":"18C and sunny"}');
    assert.equal(r2.choices[0].finish_reason, 'stop');
  });

  test('stream: reassemble tool-call deltas, send a JSON result, stream the answer', async () => {
    const stream = await client.chat.completions.create({ model: 'gem-tools', messages: MSGS, tools: TOOLS, stream: true });
    const out = await collect(stream);
    assert.equal(out.finish, 'tool_calls');
    assert.equal(out.calls.length, 1);
    assert.equal(out.calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(out.calls[0].function.arguments), GEMINI_TOOL_ARGS);
    assert.ok(out.calls[0].id.endsWith(`__thought__${GEMINI_SIGNATURE}`));

    const stream2 = await client.chat.completions.create({
      model: 'gem-tools',
      tools: TOOLS,
      stream: true,
      stream_options: { include_usage: true },
      messages: [
        ...MSGS,
        { role: 'assistant', content: null, tool_calls: out.calls },
        { role: 'tool', tool_call_id: out.calls[0].id, content: '{"temp_c":18}' },
      ],
    });
    const out2 = await collect(stream2);
    const up = lastUpstream('gemini-tools', 'streamGenerateContent');
    assert.deepEqual(up.body.contents.at(-1), {
      role: 'user',
      parts: [{ functionResponse: { name: 'get_weather', response: { temp_c: 18 } } }],
    });
    assert.equal(out2.content, 'Tool said: {"temp_c":18}');
    assert.equal(out2.finish, 'stop');
    assert.ok(out2.usage && out2.usage.prompt_tokens > 0);
  });

  test('SDK stream helper reassembles the tool call itself', async () => {
    const runner = client.chat.completions.stream({ model: 'gem-tools', messages: MSGS, tools: TOOLS });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), GEMINI_TOOL_ARGS);
  });
});

describe('embeddings', () => {
  test('SDK default (base64 on the wire, decoded by the SDK): batchEmbedContents', async () => {
    const r = await client.embeddings.create({ model: 'gem-embed', input: 'hello embeddings' });
    const up = lastUpstream('gemini-embedding-001', 'batchEmbedContents');
    assert.deepEqual(up.body, {
      requests: [{ model: 'models/gemini-embedding-001', content: { parts: [{ text: 'hello embeddings' }] } }],
    });
    assert.equal(r.data.length, 1);
    assert.deepEqual(r.data[0].embedding, geminiEmbedding('hello embeddings'));
  });

  test('float, several inputs, dimensions → outputDimensionality', async () => {
    const r = await client.embeddings.create({ model: 'gem-embed', input: ['a', 'b', 'c'], encoding_format: 'float', dimensions: 4 });
    const up = lastUpstream('gemini-embedding-001', 'batchEmbedContents');
    assert.equal(up.body.requests.length, 3);
    assert.equal(up.body.requests[2].outputDimensionality, 4);
    assert.equal(r.data.length, 3);
    r.data.forEach((d, i) => {
      assert.equal(d.index, i);
      // vectors are float32 (OpenAI's type; the gateway prints 9 significant digits)
      assert.deepEqual(d.embedding.map(Math.fround), geminiEmbedding(['a', 'b', 'c'][i], 4));
    });
  });
});

describe('errors map to the SDK error classes', () => {
  test('429 RESOURCE_EXHAUSTED → RateLimitError', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gem-429', messages: MSGS }), OpenAI.RateLimitError, {
      status: 429,
      code: 'rate_limit_exceeded',
      'error.message': GEMINI_ERRORS.fail429.error.message,
    });
  });

  test('400 over the context → BadRequestError context_length_exceeded', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gem-400', messages: MSGS }), OpenAI.BadRequestError, {
      code: 'context_length_exceeded',
      param: 'messages',
    });
  });

  test('bad upstream key (Gemini says 400 API_KEY_INVALID) → AuthenticationError', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gem-badkey', messages: MSGS }), OpenAI.AuthenticationError, {
      status: 401,
      code: 'invalid_api_key',
    });
  });

  test('404 NOT_FOUND → NotFoundError model_not_found', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gem-missing', messages: MSGS }), OpenAI.NotFoundError, { code: 'model_not_found' });
  });

  test('503 UNAVAILABLE on a stream request → InternalServerError before any chunk', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gem-503', messages: MSGS, stream: true }), OpenAI.InternalServerError, { status: 503 });
  });

  test('error inside the 200 stream → the SDK throws while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'gem-midstream', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream, { message: /internal error/i }), 'Hello');
  });

  test('upstream body cut before a finishReason → the SDK throws', async () => {
    const stream = await client.chat.completions.create({ model: 'gem-truncate', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream), 'Hello');
  });
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY, FAKE_GEMINI_KEY]);
});
