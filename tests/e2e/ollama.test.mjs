// End to end with the official `openai` npm SDK pointed at Tollgate, Tollgate translating to a fake
// Ollama server that speaks the native API (/api/chat NDJSON, /api/embed; tests/fakes/ollama-upstream.mjs).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startFakeOllama, OLLAMA_REPLY, OLLAMA_TOOL_ARGS, OLLAMA_MIDSTREAM_ERROR, ollamaEmbedding, promptEvalCount,
} from '../fakes/ollama-upstream.mjs';
import { startTollgate, toYaml, assertHealthyThenCleanExit, MASTER_KEY } from '../lib/harness.mjs';

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

let fake;
let tg;
let client;

before(async () => {
  fake = await startFakeOllama();
  const entry = (name, model, extra = {}) => ({ model_name: name, litellm_params: { model, api_base: fake.url, ...extra } });
  const config = {
    model_list: [
      entry('llama', 'ollama_chat/llama3.2'),
      entry('llama-native', 'ollama/llama3.2'),
      entry('qwen', 'ollama_chat/qwen-tools'),
      entry('broken', 'ollama_chat/midstream-error'),
      entry('cut', 'ollama_chat/truncate'),
      entry('busy', 'ollama_chat/busy'),
      entry('missing', 'ollama_chat/no-such-model'),
      entry('minilm', 'ollama/all-minilm'),
    ],
    general_settings: { master_key: MASTER_KEY },
  };
  tg = await startTollgate({ config: toYaml(config) });
  client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 20000 });
});

after(async () => {
  if (tg && tg.alive()) await tg.stop('SIGKILL', 5000);
  if (fake) await fake.close();
});

const usageFor = (messages, completion) => {
  const p = promptEvalCount(messages);
  return { prompt_tokens: p, completion_tokens: completion, total_tokens: p + completion };
};

async function collect(stream) {
  const out = { content: '', finish: null, usage: null, chunks: 0, tools: [], emptyChoices: 0 };
  for await (const chunk of stream) {
    out.chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) out.usage = chunk.usage;
    if (chunk.choices.length === 0) out.emptyChoices++;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.content) out.content += c.delta.content;
    for (const t of c.delta.tool_calls || []) {
      if (!out.tools[t.index]) out.tools[t.index] = { id: t.id, name: t.function.name, arguments: '' };
      if (t.function && t.function.arguments) out.tools[t.index].arguments += t.function.arguments;
    }
    if (c.finish_reason) out.finish = c.finish_reason;
  }
  return out;
}

describe('ollama chat', () => {
  test('non-stream: text, finish and usage; stream:false sent explicitly', async () => {
    const r = await client.chat.completions.create({ model: 'llama', messages: MSGS, temperature: 0.2, max_tokens: 64 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, OLLAMA_REPLY);
    assert.equal(r.choices[0].finish_reason, 'stop');
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
    const first = { model: 'qwen', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: TOOLS };
    let call;
    if (stream) {
      const out = await collect(await client.chat.completions.create({ ...first, stream: true }));
      assert.equal(out.finish, 'tool_calls');
      assert.equal(out.tools.length, 1);
      call = out.tools[0];
    } else {
      const r = await client.chat.completions.create(first);
      assert.equal(r.choices[0].finish_reason, 'tool_calls');
      assert.equal(r.choices[0].message.content, null);
      const tc = r.choices[0].message.tool_calls;
      assert.equal(tc.length, 1);
      assert.equal(tc[0].type, 'function');
      call = { id: tc[0].id, name: tc[0].function.name, arguments: tc[0].function.arguments };
    }
    assert.equal(call.name, 'get_weather');
    assert.equal(call.id, 'call_0', 'Ollama gives no id: the adapter synthesises call_<index>');
    assert.deepEqual(JSON.parse(call.arguments), OLLAMA_TOOL_ARGS);
    assert.deepEqual(fake.last('/api/chat').body.tools, TOOLS);

    const second = {
      model: 'qwen',
      tools: TOOLS,
      messages: [
        ...first.messages,
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
        { role: 'tool', tool_call_id: call.id, content: '18C sunny' },
      ],
    };
    let text;
    if (stream) text = (await collect(await client.chat.completions.create({ ...second, stream: true }))).content;
    else text = (await client.chat.completions.create(second)).choices[0].message.content;
    assert.equal(text, 'Tool said: 18C sunny');
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
    await assert.rejects(client.chat.completions.create({ model: 'missing', messages: MSGS }), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `got ${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      assert.match(e.message, /not found, try pulling it first/);
      return true;
    });
  });

  test('server busy → 503 InternalServerError (also for a stream request)', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'busy', messages: MSGS, stream: true }), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `got ${e.constructor.name}`);
      assert.equal(e.status, 503);
      assert.match(e.message, /server busy/);
      return true;
    });
  });

  test('an error line inside the 200 stream surfaces as an APIError while iterating', async () => {
    const stream = await client.chat.completions.create({ model: 'broken', messages: MSGS, stream: true });
    let content = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) content += chunk.choices[0]?.delta?.content || '';
      })(),
      (e) => {
        assert.ok(e instanceof OpenAI.APIError, `got ${e.constructor.name}`);
        assert.match(e.message, new RegExp(OLLAMA_MIDSTREAM_ERROR.slice(0, 30)));
        return true;
      },
    );
    assert.equal(content, 'Hello');
  });

  test('a stream cut before done:true ends with an error event', async () => {
    const stream = await client.chat.completions.create({ model: 'cut', messages: MSGS, stream: true });
    await assert.rejects(
      (async () => {
        for await (const _ of stream);
      })(),
      (e) => e instanceof OpenAI.APIError,
    );
  });

  test('images that are not data: URLs → 400 BadRequestError from the gateway', async () => {
    const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }];
    const before = fake.requests.length;
    await assert.rejects(client.chat.completions.create({ model: 'llama', messages }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e.constructor.name}`);
      assert.match(e.message, /data:/);
      return true;
    });
    assert.equal(fake.requests.length, before, 'nothing was sent upstream');
  });
});

test('gateway healthy, clean exit, no secrets printed', async () => {
  await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY]);
});
