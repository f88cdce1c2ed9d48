// What every provider file of the e2e suite shares: the conversation and tools it sends, a gateway
// started with a given deployment list and an `openai` SDK client pointed at it, the stream
// collector that folds tool-call deltas while checking OpenAI's fragment contract, and the
// assertions on completions and SDK errors. Each provider file keeps only what is specific to its
// provider (deployments, the fake's constants, the upstream request checks).

import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startTollgate, toYaml, gatewayConfigObject, MASTER_KEY } from '../lib/harness.mjs';

export const MSGS = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'What is the weather in Paris?' },
];

export const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

export const TIME_TOOL = {
  type: 'function',
  function: { name: 'get_time', description: 'Local time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } },
};

/** An `openai` SDK client for a gateway: master key, no retries, 20 s timeout. */
export function openAIClient(gatewayUrl, apiKey = MASTER_KEY) {
  return new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey, maxRetries: 0, timeout: 20000 });
}

/**
 * Starts a gateway serving exactly `deployments` (no default fake-OpenAI models), with the master
 * key and the harness's default settings. Returns { tg, client }.
 */
export async function startGateway(deployments) {
  const cfg = gatewayConfigObject({ includeDefaults: false, extraModels: deployments });
  const tg = await startTollgate({ config: toYaml(cfg) });
  return { tg, client: openAIClient(tg.url) };
}

/** The `after` hook of a provider file: kill the gateway if still alive, close the fake. */
export async function stopGateway(tg, fake) {
  if (tg && tg.alive()) await tg.stop('SIGKILL', 5000);
  if (fake) await fake.close();
}

/**
 * Reads a chat stream to its end. Every chunk must be a chat.completion.chunk and every choice
 * must carry a delta object. Tool-call deltas are folded into whole calls under OpenAI's fragment
 * contract: a fragment with an id opens the next call (index = number of calls so far, type
 * "function", name set, arguments ""); later fragments of a call carry arguments only.
 * Returns { content, reasoning, calls, finish, usage, chunks (all of them), ids (chunk ids),
 * emptyChoices (chunks without choices), argFragments }.
 */
export async function collect(stream) {
  const out = { content: '', reasoning: '', calls: [], finish: null, usage: null, chunks: [], ids: new Set(), emptyChoices: 0, argFragments: 0 };
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    out.ids.add(chunk.id);
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) out.usage = chunk.usage;
    if (chunk.choices.length === 0) out.emptyChoices++;
    for (const c of chunk.choices) {
      assert.equal(typeof c.delta, 'object', `a choice without delta reached the client: ${JSON.stringify(chunk)}`);
      assert.notEqual(c.delta, null);
      if (c.delta.content) out.content += c.delta.content;
      if (c.delta.reasoning_content) out.reasoning += c.delta.reasoning_content;
      for (const tc of c.delta.tool_calls || []) foldToolCall(out, tc);
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

function foldToolCall(out, tc) {
  if (tc.id) {
    assert.equal(out.calls.length, tc.index, 'a new call takes the next index');
    assert.equal(tc.type, 'function');
    assert.equal(tc.function.arguments, '');
    out.calls.push({ id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } });
  } else {
    assert.ok(out.calls[tc.index], `fragment for unknown call ${tc.index}`);
    assert.equal(tc.function.name, undefined, 'later fragments carry arguments only');
    out.calls[tc.index].function.arguments += tc.function.arguments;
    out.argFragments++;
  }
}

/** A non-stream chat.completion whose only choice is an assistant message with this content. */
export function assertCompletion(r, content, finish = 'stop') {
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, content);
  assert.equal(r.choices[0].finish_reason, finish);
}

function field(e, path) {
  return path.split('.').reduce((v, k) => (v == null ? undefined : v[k]), e);
}

/**
 * `promise` must reject with an instance of the SDK error class `cls`. Each entry of `fields` is
 * checked on the error: a RegExp must match, anything else must be equal; a dotted key reads a
 * nested field ('error.message'); `headers` maps response header names to their values.
 * `more(e)` makes further assertions.
 */
export async function assertSdkError(promise, cls, fields = {}, more = null) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof cls, `${e.constructor.name}: ${e.message}`);
    for (const [k, want] of Object.entries(fields)) {
      if (k === 'headers') {
        for (const [h, v] of Object.entries(want)) assert.equal(e.headers.get(h), v, `header ${h}`);
      } else if (want instanceof RegExp) {
        assert.match(field(e, k), want, k);
      } else {
        assert.equal(field(e, k), want, k);
      }
    }
    if (more) more(e);
    return true;
  });
}

/**
 * A stream that fails after it started: iterating it must throw an SDK error (`cls`, with
 * `fields` as in assertSdkError). Returns the content received before the error.
 */
export async function assertStreamFails(stream, fields = {}, cls = OpenAI.APIError) {
  let text = '';
  const read = (async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
  })();
  await assertSdkError(read, cls, fields);
  return text;
}

/**
 * One tool round trip through `model`, streamed or not. The first answer must be exactly one
 * tool call (finish "tool_calls", no content); `checkCall(call)` checks it ({ id, type,
 * function: { name, arguments } }). The call and `result` then go back as an assistant and a
 * tool message, and the answer must be "Tool said: <result>". Returns the messages of that
 * second request.
 */
export async function toolRoundTrip(client, { model, tools, stream, checkCall, result = '18C sunny' }) {
  const first = { model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools };
  let call;
  if (stream) {
    const out = await collect(await client.chat.completions.create({ ...first, stream: true }));
    assert.equal(out.finish, 'tool_calls');
    assert.equal(out.content, '');
    assert.equal(out.calls.length, 1);
    call = out.calls[0];
  } else {
    const r = await client.chat.completions.create(first);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.choices[0].message.content, null);
    assert.equal(r.choices[0].message.tool_calls.length, 1);
    call = r.choices[0].message.tool_calls[0];
  }
  assert.equal(call.type, 'function');
  checkCall(call);
  const { id, function: fn } = call;
  const messages = [
    ...first.messages,
    { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: fn.name, arguments: fn.arguments } }] },
    { role: 'tool', tool_call_id: id, content: result },
  ];
  const second = { model, tools, messages };
  const text = stream
    ? (await collect(await client.chat.completions.create({ ...second, stream: true }))).content
    : (await client.chat.completions.create(second)).choices[0].message.content;
  assert.equal(text, `Tool said: ${result}`);
  return messages;
}
