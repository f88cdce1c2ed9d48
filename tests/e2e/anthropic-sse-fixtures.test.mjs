// The Anthropic SSE that Tollgate's encoder produces (tests/adapters/fixtures/surface/stream-*.sse,
// checked byte for byte by tests/adapters/test_surface_anthropic.c) fed to the official
// @anthropic-ai/sdk through a fake fetch: the SDK's MessageStream must accept every event and
// rebuild the message we meant, and error streams must surface as the SDK's APIError.
//
// No gateway is involved; run with `node --test tests/e2e/anthropic-sse-fixtures.test.mjs`.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import Anthropic from '@anthropic-ai/sdk';

const FIXTURES = fileURLToPath(new URL('../adapters/fixtures/surface/', import.meta.url));

// A Response whose body arrives in pieces of `piece` bytes, as a network would deliver it.
function sseResponse(bytes, piece) {
  let off = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(off, off + piece));
      off += piece;
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'request-id': 'req_fixture' },
  });
}

function clientFor(name, piece) {
  const bytes = new Uint8Array(fs.readFileSync(path.join(FIXTURES, `${name}.sse`)));
  return new Anthropic({
    apiKey: 'sk-ant-test',
    baseURL: 'http://fixture.invalid',
    maxRetries: 0,
    fetch: async () => sseResponse(bytes, piece),
  });
}

// A MessageStream over a fixture; `types` collects the type of every event, in order.
function openStream(name, piece, maxTokens, types, onEvent = () => {}) {
  const stream = clientFor(name, piece).messages.stream({
    model: 'claude-sonnet-4-5',
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: 'hi' }],
  });
  stream.on('streamEvent', (ev) => {
    types.push(ev.type);
    onEvent(ev);
  });
  return stream;
}

// Streams a fixture through MessageStream; returns the final message and, per block index, the
// concatenated partial_json as sent (so we can check it is complete JSON, not just partial-parsable).
async function replay(name, piece) {
  const partial = new Map();
  const types = [];
  const stream = openStream(name, piece, 1024, types, (ev) => {
    if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') {
      partial.set(ev.index, (partial.get(ev.index) ?? '') + ev.delta.partial_json);
    }
  });
  const message = await stream.finalMessage();
  return { message, partial, types };
}

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

const cases = [
  {
    name: 'stream-text',
    id: 'msg_01Tollgate',
    model: 'claude-sonnet-4-5',
    content: [{ type: 'text', text: 'Hello! Café "au lait"?\nSure — one\ttab.' }],
    stop_reason: 'end_turn',
    usage: { input_tokens: 19, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  },
  {
    name: 'stream-parallel-tools',
    id: 'msg_01Tollgate',
    model: 'claude-sonnet-4-5',
    content: [
      { type: 'text', text: 'Let me check both cities.' },
      { type: 'tool_use', id: 'call_Ua8l0bN4', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_Zx91Lm', name: 'get_weather', input: { city: 'Tōkyō\n' } },
    ],
    stop_reason: 'tool_use',
    usage: { input_tokens: 173, output_tokens: 51, cache_read_input_tokens: 1920, cache_creation_input_tokens: 0 },
  },
  {
    name: 'stream-reasoning',
    id: 'msg_01Tollgate',
    model: 'claude-sonnet-4-5',
    content: [
      { type: 'thinking', thinking: 'The user wants 2+2. That is 4.', signature: '' },
      { type: 'text', text: '2 + 2 = **4**' },
    ],
    stop_reason: 'max_tokens',
    usage: { input_tokens: 12, output_tokens: 40, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  },
  {
    name: 'stream-azure-nousage',
    id: 'msg_AZ9',
    model: 'gpt-4o-2024-11-20',
    content: [{ type: 'text', text: 'Bonjour' }],
    stop_reason: 'refusal',
    // no usage chunk upstream: the message_start placeholders stay
    usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  },
  {
    name: 'stream-compat-tools',
    id: 'msg_01Tollgate',
    model: 'claude-sonnet-4-5',
    content: [
      { type: 'text', text: "I'll call two tools." },
      { type: 'tool_use', id: 'function-call-1', name: 'get_weather', input: { city: 'Lima' } },
      { type: 'tool_use', id: 'function-call-2', name: 'get_time', input: {} },
    ],
    stop_reason: 'tool_use',
    usage: { input_tokens: 50, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  },
];

for (const c of cases) {
  for (const piece of [1, 7, 1 << 16]) {
    test(`${c.name} rebuilds the message (pieces of ${piece} bytes)`, async () => {
      const { message, partial, types } = await replay(c.name, piece);
      assert.equal(message.id, c.id);
      assert.equal(message.type, 'message');
      assert.equal(message.role, 'assistant');
      assert.equal(message.model, c.model);
      assert.deepEqual(plain(message.content), c.content);
      assert.equal(message.stop_reason, c.stop_reason);
      assert.equal(message.stop_sequence, null);
      assert.deepEqual(
        {
          input_tokens: message.usage.input_tokens,
          output_tokens: message.usage.output_tokens,
          cache_read_input_tokens: message.usage.cache_read_input_tokens,
          cache_creation_input_tokens: message.usage.cache_creation_input_tokens,
        },
        c.usage,
      );
      assert.equal(types[0], 'message_start');
      assert.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
      for (const [index, json] of partial) {
        assert.deepEqual(JSON.parse(json), c.content[index].input, `block ${index} partial_json is complete JSON`);
      }
    });
  }
}

const errorCases = [
  {
    name: 'stream-error',
    type: 'api_error',
    message: 'The server had an error while processing your request. Sorry about that!',
  },
  { name: 'stream-truncated', type: 'api_error', message: 'upstream stream ended before it was complete' },
];

for (const c of errorCases) {
  test(`${c.name} surfaces as the SDK's APIError`, async () => {
    const seen = [];
    const stream = openStream(c.name, 5, 64, seen);
    stream.on('error', () => {}); // finalMessage() below reports it
    await assert.rejects(stream.finalMessage(), (err) => {
      assert.ok(err instanceof Anthropic.APIError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.error?.type, 'error');
      assert.equal(err.error?.error?.type, c.type);
      assert.equal(err.error?.error?.message, c.message);
      return true;
    });
    assert.equal(seen[0], 'message_start', 'events before the error were delivered');
    assert.ok(!seen.includes('message_stop'));
  });
}
