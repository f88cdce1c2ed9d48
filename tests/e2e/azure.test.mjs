// End to end with the official `openai` npm SDK pointed at Tollgate, Tollgate translating to a fake
// Azure OpenAI resource (deployment URLs with api-version, the v1 API, api-key auth, content-filter
// chunks; tests/fakes/azure-upstream.mjs).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeAzure, AZURE_FAKE_KEY, AZURE_REPLY, AZURE_TOOL_CALL_ID, AZURE_TOOL_ARG_PIECES, AZURE_MIDSTREAM_ERROR,
  azureEmbedding, promptTokens,
} from '../fakes/azure-upstream.mjs';
import { assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';
import {
  MSGS, WEATHER_TOOL, startGateway, stopGateway, collect, assertCompletion, assertSdkError, assertStreamFails, toolRoundTrip,
} from './common.mjs';

const TOOLS = [WEATHER_TOOL];

let fake;
let tg;
let client;

before(async () => {
  fake = await startFakeAzure();
  const entry = (name, deployment, extra = {}) => ({
    model_name: name,
    litellm_params: { model: `azure/${deployment}`, api_base: fake.url, api_key: AZURE_FAKE_KEY, ...extra },
  });
  ({ tg, client } = await startGateway([
    entry('gpt-4o', 'gpt-4o-prod', { api_version: '2024-10-21' }),
    entry('gpt-4o-v1', 'gpt-4o-prod', { api_base: `${fake.url}/openai/v1` }),
    entry('gpt-4o-legacy', 'gpt-4o-prod', { api_version: '2024-02-01' }),
    entry('gpt-4o-tools', 'gpt-4o-tools'),
    entry('throttled', 'throttled'),
    entry('filtered', 'filtered'),
    entry('broken', 'midstream-error'),
    entry('gone', 'deleted-deployment'),
    entry('wrong-key', 'gpt-4o-prod', { api_key: 'not-the-key' }),
    entry('embed', 'text-embedding-3-small'),
  ]));
});

after(() => stopGateway(tg, fake));

const usageOf = (messages) => {
  const p = promptTokens(messages);
  return { prompt_tokens: p, completion_tokens: 5, total_tokens: p + 5 };
};

const pick = (u) => ({ prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens });

describe('azure chat', () => {
  test('non-stream: deployment URL with api-version, api-key header, deployment as model', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages: MSGS, temperature: 0 });
    assertCompletion(r, AZURE_REPLY);
    assert.deepEqual(pick(r.usage), usageOf(MSGS));
    const up = fake.last();
    assert.equal(up.path, '/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21');
    assert.equal(up.headers['api-key'], AZURE_FAKE_KEY);
    assert.equal(up.headers.authorization, undefined);
    assert.equal(up.body.model, 'gpt-4o-prod');
    assert.equal(up.body.temperature, 0);
  });

  test('stream with include_usage: filter chunks dropped, no choice without delta, usage present', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: MSGS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const out = await collect(stream);
    assert.equal(out.content, AZURE_REPLY);
    assert.equal(out.finish, 'stop');
    assert.deepEqual(pick(out.usage), usageOf(MSGS));
    assert.ok(out.chunks.every((c) => c.id !== ''), 'the prompt-filter chunk (empty id) never reaches the client');
    assert.equal(out.chunks.filter((c) => c.choices.length === 0).length, 1, 'only the usage chunk has no choices');
  });

  test('stream without include_usage: the gateway asked for usage, the client does not see it', async () => {
    const out = await collect(await client.chat.completions.create({ model: 'gpt-4o', messages: MSGS, stream: true }));
    assert.equal(out.content, AZURE_REPLY);
    assert.equal(out.usage, null);
    assert.ok(out.chunks.every((c) => c.choices.length > 0));
    assert.deepEqual(fake.last().body.stream_options, { include_usage: true });
  });

  test('v1 API: /openai/v1/chat/completions, no api-version, model = deployment', async () => {
    const out = await collect(await client.chat.completions.create({ model: 'gpt-4o-v1', messages: MSGS, stream: true, stream_options: { include_usage: true } }));
    assert.equal(out.content, AZURE_REPLY);
    assert.ok(out.usage);
    assert.equal(fake.last().path, '/openai/v1/chat/completions');
    assert.equal(fake.last().body.model, 'gpt-4o-prod');
  });

  test('api-version before 2024-09-01: no stream_options spliced, the stream still works', async () => {
    const out = await collect(await client.chat.completions.create({ model: 'gpt-4o-legacy', messages: MSGS, stream: true }));
    assert.equal(out.content, AZURE_REPLY);
    assert.equal('stream_options' in fake.last().body, false);
    assert.match(fake.last().path, /api-version=2024-02-01$/);
  });
});

describe('azure tools', () => {
  async function roundTrip(stream) {
    const messages = await toolRoundTrip(client, {
      model: 'gpt-4o-tools',
      tools: TOOLS,
      stream,
      checkCall: (call) =>
        assert.deepEqual(
          { id: call.id, name: call.function.name, arguments: call.function.arguments },
          { id: AZURE_TOOL_CALL_ID, name: 'get_weather', arguments: AZURE_TOOL_ARG_PIECES.join('') },
        ),
    });
    assert.deepEqual(fake.last().body.messages, messages, 'the conversation reaches Azure unchanged');
  }

  test('non-stream round trip', () => roundTrip(false));
  test('stream round trip: tool-call deltas reassemble', () => roundTrip(true));
});

describe('azure embeddings', () => {
  test('float', async () => {
    const r = await client.embeddings.create({ model: 'embed', input: ['a', 'bb'], encoding_format: 'float' });
    assert.deepEqual(r.data.map((d) => d.embedding), [azureEmbedding('a'), azureEmbedding('bb')]);
    assert.match(fake.last().path, /^\/openai\/deployments\/text-embedding-3-small\/embeddings\?api-version=/);
  });

  test('base64 (the SDK default)', async () => {
    const r = await client.embeddings.create({ model: 'embed', input: 'hello' });
    assert.deepEqual(r.data[0].embedding, azureEmbedding('hello'));
    assert.equal(fake.last().body.encoding_format, 'base64');
  });
});

describe('azure errors', () => {
  test('429 with Retry-After → RateLimitError, code "429", type normalised', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'throttled', messages: MSGS }), OpenAI.RateLimitError, {
      status: 429,
      code: '429',
      type: 'rate_limit_error',
      headers: { 'retry-after': '2' },
    });
  });

  test('prompt filtered → 400 BadRequestError with code content_filter, param prompt', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'filtered', messages: MSGS, stream: true }), OpenAI.BadRequestError, {
      code: 'content_filter',
      param: 'prompt',
      type: 'invalid_request_error',
    });
  });

  test('unknown deployment → 404 NotFoundError with DeploymentNotFound', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'gone', messages: MSGS }), OpenAI.NotFoundError, { code: 'DeploymentNotFound' });
  });

  test('bad key → 401 AuthenticationError', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'wrong-key', messages: MSGS }), OpenAI.AuthenticationError, {
      type: 'authentication_error',
    });
  });

  test('error inside the 200 stream → APIError while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'broken', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream, { message: new RegExp(AZURE_MIDSTREAM_ERROR) }), 'Hello');
  });
});

test('gateway healthy, clean exit, no secrets printed', async () => {
  await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY, AZURE_FAKE_KEY]);
});
