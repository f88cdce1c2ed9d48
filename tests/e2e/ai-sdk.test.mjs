// End to end with the Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`), what a Next.js app
// uses: generateText / streamText (with usage), multi-step tool calls with zod schemas, streamed
// tool-call fragments, embedMany, and errors as the SDK's APICallError — against Tollgate in front
// of the fake OpenAI upstream, with the master key and with a rate-limited virtual key.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, streamText, embedMany, tool, stepCountIs, APICallError } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';
import { FAKE_REPLY, FAKE_TOOL_CALL_ID, fakeEmbedding, promptTokens } from '../fakes/openai-upstream.mjs';
import { startStack, postJSON, assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';
import { MSGS } from './common.mjs';

// MSGS as the AI SDK wants them: the system prompt apart
const SYSTEM = MSGS[0].content;
const TURNS = MSGS.slice(1);

let s;
let tollgate;

const provider = (apiKey = MASTER_KEY) =>
  createOpenAICompatible({ name: 'tollgate', baseURL: `${s.url}/v1`, apiKey, includeUsage: true });

const weather = () =>
  tool({
    description: 'Current weather',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => `18C sunny in ${city}`,
  });

before(async () => {
  s = await startStack();
  tollgate = provider();
});
after(async () => {
  if (s) await s.close();
});

describe('text', () => {
  test('generateText: text, finish reason, usage', async () => {
    const r = await generateText({ model: tollgate('gpt-test'), system: SYSTEM, messages: TURNS, maxRetries: 0 });
    assert.equal(r.text, FAKE_REPLY);
    assert.equal(r.finishReason, 'stop');
    const p = promptTokens(MSGS);
    assert.equal(r.usage.inputTokens, p);
    assert.equal(r.usage.outputTokens, 5);
    assert.equal(r.usage.totalTokens, p + 5);
    assert.ok(r.response.headers['x-request-id'], 'the response headers reach the app');
  });

  test('streamText: the text stream, then usage (stream_options.include_usage through Tollgate)', async () => {
    const r = streamText({ model: tollgate('gpt-test'), system: SYSTEM, messages: TURNS, maxRetries: 0 });
    let text = '';
    let parts = 0;
    for await (const delta of r.textStream) {
      text += delta;
      parts++;
    }
    assert.equal(text, FAKE_REPLY);
    assert.ok(parts >= 2, `streamed in pieces (${parts})`);
    assert.equal(await r.finishReason, 'stop');
    const usage = await r.usage;
    assert.equal(usage.inputTokens, promptTokens(MSGS));
    assert.equal(usage.outputTokens, 5);
  });

  test('a long stream arrives whole and in order', async () => {
    const r = streamText({ model: tollgate('gpt-many'), prompt: 'count', maxRetries: 0 });
    let text = '';
    for await (const delta of r.textStream) text += delta;
    assert.equal(text, Array.from({ length: 200 }, (_, i) => `${i} `).join(''));
  });
});

describe('tools', () => {
  for (const stream of [false, true]) {
    test(`two steps: the model calls get_weather, the app runs it, the model answers (${stream ? 'streamText' : 'generateText'})`, async () => {
      const opts = {
        model: tollgate('gpt-tools'),
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
        tools: { get_weather: weather() },
        stopWhen: stepCountIs(3),
        maxRetries: 0,
      };
      let steps;
      let text;
      if (stream) {
        const r = streamText(opts);
        const seen = [];
        for await (const part of r.fullStream) seen.push(part.type);
        assert.ok(seen.includes('tool-input-delta'), `tool arguments streamed in fragments: ${[...new Set(seen)]}`);
        steps = await r.steps;
        text = await r.text;
      } else {
        const r = await generateText(opts);
        steps = r.steps;
        text = r.text;
      }
      assert.equal(steps.length, 2, 'a tool step, then the answer');
      const call = steps[0].toolCalls[0];
      assert.equal(call.toolName, 'get_weather');
      assert.equal(call.toolCallId, FAKE_TOOL_CALL_ID);
      assert.deepEqual(call.input, { city: 'Paris' });
      assert.equal(steps[0].finishReason, 'tool-calls');
      assert.match(text, /^Tool said: .*18C sunny in Paris/);
    });
  }
});

describe('embeddings', () => {
  test('embedMany: one vector per value, in order, as the upstream computed them', async () => {
    const values = ['alpha', 'beta', 'gamma'];
    const r = await embedMany({ model: tollgate.textEmbeddingModel('text-embedding-test'), values, maxRetries: 0 });
    assert.equal(r.embeddings.length, 3);
    r.embeddings.forEach((v, i) => {
      const want = fakeEmbedding(values[i]);
      assert.equal(v.length, want.length);
      v.forEach((x, j) => assert.ok(Math.abs(x - want[j]) < 1e-6, `${values[i]}[${j}]`));
    });
    assert.ok(r.usage.tokens > 0);
  });
});

describe('errors', () => {
  test('an upstream 429 is an APICallError with its status and retry-after', async () => {
    await assert.rejects(generateText({ model: tollgate('gpt-fail429'), prompt: 'x', maxRetries: 0 }), (e) => {
      assert.ok(APICallError.isInstance(e), `${e.name}: ${e.message}`);
      assert.equal(e.statusCode, 429);
      assert.equal(e.responseHeaders['retry-after'], '7');
      return true;
    });
  });

  test('an unknown model is a 404 APICallError with OpenAI-shaped data', async () => {
    await assert.rejects(generateText({ model: tollgate('no-such-model'), prompt: 'x', maxRetries: 0 }), (e) => {
      assert.ok(APICallError.isInstance(e));
      assert.equal(e.statusCode, 404);
      assert.match(e.message, /no-such-model/);
      return true;
    });
  });

  test("a virtual key's rpm limit: the second call is a 429 the app can read", async () => {
    const g = await postJSON(`${s.url}/key/generate`, { rpm_limit: 1 });
    assert.equal(g.status, 200, g.text);
    const limited = provider(g.json.key);
    const ok = await generateText({ model: limited('gpt-test'), prompt: 'one', maxRetries: 0 });
    assert.equal(ok.text, FAKE_REPLY);
    assert.equal(ok.response.headers['x-ratelimit-limit-requests'], '1');
    await assert.rejects(generateText({ model: limited('gpt-test'), prompt: 'two', maxRetries: 0 }), (e) => {
      assert.ok(APICallError.isInstance(e));
      assert.equal(e.statusCode, 429);
      assert.match(e.message, /rpm_limit/);
      assert.ok(Number(e.responseHeaders['retry-after']) >= 1);
      return true;
    });
    await assertHealthyThenCleanExit(s.tg, assert, [MASTER_KEY, g.json.key]);
  });
});
