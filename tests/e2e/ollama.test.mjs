// End to end with the official `openai` npm SDK pointed at Tollgate, Tollgate translating to a fake
// Ollama server that speaks the native API (/api/chat NDJSON, /api/embed; tests/fakes/ollama-upstream.mjs).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeOllama, OLLAMA_REPLY, OLLAMA_TOOL_ARGS, OLLAMA_MIDSTREAM_ERROR, ollamaEmbedding, promptEvalCount,
} from '../fakes/ollama-upstream.mjs';
import { assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';
import {
  MSGS, WEATHER_TOOL, startGateway, stopGateway, collect, assertCompletion, assertSdkError, assertStreamFails, toolRoundTrip,
} from './common.mjs';

const TOOLS = [WEATHER_TOOL];

let fake;
let tg;
let client;

before(async () => {
  fake = await startFakeOllama();
  const entry = (name, model, extra = {}) => ({ model_name: name, litellm_params: { model, api_base: fake.url, ...extra } });
  ({ tg, client } = await startGateway([
    entry('llama', 'ollama_chat/llama3.2'),
    entry('llama-native', 'ollama/llama3.2'),
    entry('qwen', 'ollama_chat/qwen-tools'),
    entry('broken', 'ollama_chat/midstream-error'),
    entry('cut', 'ollama_chat/truncate'),
    entry('busy', 'ollama_chat/busy'),
    entry('missing', 'ollama_chat/no-such-model'),
    entry('minilm', 'ollama/all-minilm'),
  ]));
});

after(() => stopGateway(tg, fake));

const usageFor = (messages, completion) => {
  const p = promptEvalCount(messages);
  return { prompt_tokens: p, completion_tokens: completion, total_tokens: p + completion };
};

describe('ollama chat', () => {
  test('non-stream: text, finish and usage; stream:false sent explicitly', async () => {
    const r = await client.chat.completions.create({ model: 'llama', messages: MSGS, temperature: 0.2, max_tokens: 64 });
    assertCompletion(r, OLLAMA_REPLY);
    assert.deepEqual(r.usage, usageFor(MSGS, 4));
    const up = fake.last('/api/chat');
    assert.equal(up.body.stream, false);
    assert.equal(up.body.model, 'llama3.2');
    assert.deepEqual(up.body.options, { temperature: 0.2, num_predict: 64 });
  });

  test('the ollama/ prefix reaches the same native API', async () => {
    const r = await client.chat.completions.create({ model: 'llama-native', messages: MSGS });
    assert.equal(r.choices[0].message.content, OLLAMA_REPLY);
  });

  test('stream with include_usage: content from NDJSON lines split across reads, then usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'llama',
      messages: MSGS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const out = await collect(stream);
    assert.equal(out.content, OLLAMA_REPLY);
    assert.equal(out.finish, 'stop');
    assert.deepEqual(out.usage, usageFor(MSGS, 4));
    assert.equal(fake.last('/api/chat').body.stream, true);
  });

  test('stream without include_usage: no usage chunk reaches the client', async () => {
    const stream = await client.chat.completions.create({ model: 'llama', messages: MSGS, stream: true });
    const out = await collect(stream);
    assert.equal(out.content, OLLAMA_REPLY);
    assert.equal(out.usage, null);
    assert.equal(out.emptyChoices, 0);
  });
});

describe('ollama tools', () => {
  async function roundTrip(stream) {
    await toolRoundTrip(client, {
      model: 'qwen',
      tools: TOOLS,
      stream,
      checkCall: (call) => {
        assert.equal(call.function.name, 'get_weather');
        assert.equal(call.id, 'call_0', 'Ollama gives no id: the adapter synthesises call_<index>');
        assert.deepEqual(JSON.parse(call.function.arguments), OLLAMA_TOOL_ARGS);
        assert.deepEqual(fake.last('/api/chat').body.tools, TOOLS);
      },
    });
    const up = fake.last('/api/chat').body.messages;
    assert.deepEqual(up[1].tool_calls, [{ function: { name: 'get_weather', arguments: OLLAMA_TOOL_ARGS } }]);
    assert.deepEqual(up[2], { role: 'tool', content: '18C sunny', tool_name: 'get_weather' });
  }

  test('non-stream round trip: tool call out, tool result back with tool_name', () => roundTrip(false));
  test('stream round trip: tool-call deltas reassemble', () => roundTrip(true));
});

describe('ollama embeddings', () => {
  test('float', async () => {
    const r = await client.embeddings.create({ model: 'minilm', input: ['first', 'second'], encoding_format: 'float' });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 2);
    // floats are printed with float32 precision (9 significant digits): equal once rounded to float32
    const f32 = (v) => v.map(Math.fround);
    assert.deepEqual(f32(r.data[0].embedding), ollamaEmbedding('first'));
    assert.deepEqual(f32(r.data[1].embedding), ollamaEmbedding('second'));
    assert.equal(r.usage.prompt_tokens, Math.ceil('firstsecond'.length / 4));
    assert.deepEqual(fake.last('/api/embed').body, { model: 'all-minilm', input: ['first', 'second'] });
  });

  test('base64 (the SDK default), decoded by the SDK to the same floats', async () => {
    const r = await client.embeddings.create({ model: 'minilm', input: 'hello world' });
    assert.deepEqual(r.data[0].embedding, ollamaEmbedding('hello world'));
  });
});

describe('ollama errors', () => {
  test('model not pulled → 404 NotFoundError with model_not_found', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'missing', messages: MSGS }), OpenAI.NotFoundError, {
      status: 404,
      code: 'model_not_found',
      message: /not found, try pulling it first/,
    });
  });

  test('server busy → 503 InternalServerError (also for a stream request)', async () => {
    await assertSdkError(client.chat.completions.create({ model: 'busy', messages: MSGS, stream: true }), OpenAI.InternalServerError, {
      status: 503,
      message: /server busy/,
    });
  });

  test('an error line inside the 200 stream surfaces as an APIError while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'broken', messages: MSGS, stream: true });
    assert.equal(await assertStreamFails(stream, { message: new RegExp(OLLAMA_MIDSTREAM_ERROR.slice(0, 30)) }), 'Hello');
  });

  test('a stream cut before done:true ends with an error event', async () => {
    await assertStreamFails(await client.chat.completions.create({ model: 'cut', messages: MSGS, stream: true }));
  });

  test('images that are not data: URLs → 400 BadRequestError from the gateway', async () => {
    const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }];
    const before = fake.requests.length;
    await assertSdkError(client.chat.completions.create({ model: 'llama', messages }), OpenAI.BadRequestError, { message: /data:/ });
    assert.equal(fake.requests.length, before, 'nothing was sent upstream');
  });
});

test('gateway healthy, clean exit, no secrets printed', async () => {
  await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY]);
});
