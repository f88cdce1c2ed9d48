// A fake Anthropic Messages API upstream for Tollgate's e2e tests (shared/providers.md §3).
//
// It speaks Anthropic's wire format: POST /v1/messages with `x-api-key` and
// `anthropic-version: 2023-06-01` (401 / 400 otherwise), and it validates requests the way the
// real API does where a translator can get it wrong: max_tokens is required, roles are only
// user/assistant and must alternate starting with user, `system` is top-level only,
// tool_result blocks sit in a user turn ahead of any other block and answer tool_use ids of the
// previous assistant turn, tool_use input is an object, and tool_choice needs tools. Violations
// answer 400 invalid_request_error like the real API.
//
// Non-stream answers are message objects; streams are Anthropic's named SSE events
// (message_start, content_block_start/delta/stop, ping, message_delta with cumulative usage,
// message_stop), with tool_use input split across input_json_delta events.
//
// Behaviour is chosen by the request's `model` (the gateway sends the deployment's upstream
// name, so `anthropic/claude-tools` arrives as "claude-tools"):
//   claude-ok          "Hello from fake Claude." (stream: four text deltas)
//   claude-tools       last user turn holds tool_result blocks → "Tool said: <results joined by ' | '>";
//                      otherwise "Let me check." then one tool_use per requested tool (at most
//                      two; input {"city":"Paris"} / {"tz":"Europe/Paris"}), stop_reason tool_use
//   claude-thinking    a thinking block (with signature) then text "42."
//   claude-overloaded  529 overloaded_error
//   claude-ratelimit   429 rate_limit_error with retry-after: 3
//   claude-toolong     400 "prompt is too long: 208656 tokens > 200000 maximum"
//   claude-midstream-error   stream: one text delta, then `event: error` overloaded_error
// Usage: input_tokens = ceil(characters of all text / 4), cache_read_input_tokens = 8,
// cache_creation_input_tokens = 2, output_tokens = 7.
//
// Library use: const fake = await startFakeAnthropic();  fake.url (base WITHOUT /v1),
// fake.stats.last (latest request: headers, body), await fake.close().

import { isMain, parseJson, startFakeServer } from './common.mjs';

export const FAKE_ANTHROPIC_KEY = 'fake-key';
export const CLAUDE_REPLY = 'Hello from fake Claude.';
export const CLAUDE_REPLY_PIECES = ['Hello', ' from', ' fake', ' Claude.'];
export const CLAUDE_TOOL_INPUTS = [{ city: 'Paris' }, { tz: 'Europe/Paris' }];
export const CLAUDE_USAGE = { cache_read: 8, cache_write: 2, output: 7 };
export const CLAUDE_THINKING = 'The user wants the answer. It is 42.';

const VERSION = '2023-06-01';

function anthropicError(type, message) {
  return { type: 'error', error: { type, message }, request_id: 'req_fake_01' };
}

/** Characters of text the fake counts as the prompt: system text and every text-ish block. */
export function anthropicPromptChars(body) {
  let n = 0;
  const add = (c) => {
    if (typeof c === 'string') n += c.length;
    else if (Array.isArray(c)) {
      for (const b of c) {
        if (b && typeof b.text === 'string') n += b.text.length;
        if (b && b.type === 'tool_result') add(b.content);
      }
    }
  };
  add(body.system);
  for (const m of body.messages || []) add(m.content);
  return n;
}

function usageFor(body) {
  return {
    input_tokens: Math.ceil(anthropicPromptChars(body) / 4),
    cache_creation_input_tokens: CLAUDE_USAGE.cache_write,
    cache_read_input_tokens: CLAUDE_USAGE.cache_read,
    output_tokens: CLAUDE_USAGE.output,
    service_tier: 'standard',
  };
}

/** The OpenAI usage Tollgate must report for a request body the fake received. */
export function expectedOpenAIUsage(body) {
  const u = usageFor(body);
  const prompt = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.output_tokens,
    total_tokens: prompt + u.output_tokens,
    prompt_tokens_details: { cached_tokens: u.cache_read_input_tokens },
  };
}

// ---- request validation (what the real API rejects) -----------------------------------------

function validate(body) {
  if (!body || typeof body !== 'object') return 'body: expected an object';
  if (typeof body.model !== 'string') return 'model: Field required';
  if (!Number.isInteger(body.max_tokens)) return 'max_tokens: Field required';
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'messages: at least one message is required';
  if (body.system !== undefined && typeof body.system !== 'string' && !Array.isArray(body.system)) {
    return 'system: Input should be a valid string or list';
  }
  if (body.tool_choice !== undefined && !Array.isArray(body.tools)) return 'tool_choice may only be specified while providing tools.';
  let prevToolIds = new Set();
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i];
    if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (i === 0 && m.role !== 'user') return 'messages: first message must use the "user" role';
    if (i > 0 && body.messages[i - 1].role === m.role) return 'messages: roles must alternate between "user" and "assistant"';
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    if (!Array.isArray(blocks) || blocks.length === 0) return `messages.${i}.content: must be a non-empty string or list`;
    let seenOther = false;
    const ids = new Set();
    for (const b of blocks) {
      if (b.type === 'text' && (typeof b.text !== 'string' || b.text === '')) return `messages.${i}: text content blocks must be non-empty`;
      if (b.type === 'tool_use') {
        if (m.role !== 'assistant') return `messages.${i}: tool_use blocks belong to assistant turns`;
        if (!b.input || typeof b.input !== 'object' || Array.isArray(b.input)) return `messages.${i}: tool_use.input: Input should be a valid dictionary`;
        ids.add(b.id);
      }
      if (b.type === 'tool_result') {
        if (m.role !== 'user') return `messages.${i}: tool_result blocks belong to user turns`;
        if (seenOther) return `messages.${i}: tool_result blocks must come first in the user message`;
        if (!prevToolIds.has(b.tool_use_id)) return `messages.${i}: unexpected tool_use_id found in tool_result blocks: ${b.tool_use_id}`;
      } else {
        seenOther = true;
      }
    }
    prevToolIds = ids;
  }
  return null;
}

// ---- answers ------------------------------------------------------------------------------

function lastUserResults(body) {
  const last = body.messages[body.messages.length - 1];
  if (!Array.isArray(last.content)) return [];
  return last.content.filter((b) => b.type === 'tool_result');
}

function resultText(r) {
  if (typeof r.content === 'string') return r.content;
  if (Array.isArray(r.content)) return r.content.map((b) => b.text || '').join('');
  return '';
}

/** The content blocks and stop reason of the answer. */
function plan(body) {
  const model = body.model;
  if (model === 'claude-tools') {
    const results = lastUserResults(body);
    if (results.length > 0) {
      return { blocks: [{ type: 'text', text: `Tool said: ${results.map(resultText).join(' | ')}` }], stop: 'end_turn' };
    }
    const tools = (body.tools || []).slice(0, 2);
    const blocks = [{ type: 'text', text: 'Let me check.' }];
    tools.forEach((t, i) => blocks.push({ type: 'tool_use', id: `toolu_fake_${i + 1}`, name: t.name, input: CLAUDE_TOOL_INPUTS[i] }));
    return { blocks, stop: tools.length ? 'tool_use' : 'end_turn' };
  }
  if (model === 'claude-thinking') {
    return {
      blocks: [
        { type: 'thinking', thinking: CLAUDE_THINKING, signature: 'EqQBCgIYAhIMfakesignature' },
        { type: 'text', text: '42.' },
      ],
      stop: 'end_turn',
    };
  }
  return { blocks: [{ type: 'text', text: CLAUDE_REPLY }], stop: 'end_turn' };
}

function messageObject(body, p) {
  return {
    id: 'msg_fake_01',
    type: 'message',
    role: 'assistant',
    model: body.model,
    content: p.blocks,
    stop_reason: p.stop,
    stop_sequence: null,
    usage: usageFor(body),
  };
}

function ev(name, data) {
  return `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
}

/** Anthropic's SSE events for a planned answer; text and tool input arrive in pieces. */
function streamEvents(body, p) {
  const u = usageFor(body);
  const out = [
    ev('message_start', {
      message: { id: 'msg_fake_01', type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...u, output_tokens: 1 } },
    }),
  ];
  p.blocks.forEach((b, index) => {
    if (b.type === 'text') {
      out.push(ev('content_block_start', { index, content_block: { type: 'text', text: '' } }));
      if (index === 0) out.push(ev('ping', {}));
      const pieces = b.text === CLAUDE_REPLY ? CLAUDE_REPLY_PIECES : [b.text.slice(0, 4), b.text.slice(4)].filter(Boolean);
      for (const t of pieces) out.push(ev('content_block_delta', { index, delta: { type: 'text_delta', text: t } }));
    } else if (b.type === 'thinking') {
      out.push(ev('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
      out.push(ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: b.thinking } }));
      out.push(ev('content_block_delta', { index, delta: { type: 'signature_delta', signature: b.signature } }));
    } else {
      out.push(ev('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }));
      const json = JSON.stringify(b.input);
      const cut = Math.floor(json.length / 2);
      for (const piece of ['', json.slice(0, cut), json.slice(cut)]) {
        out.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } }));
      }
    }
    out.push(ev('content_block_stop', { index }));
  });
  out.push(ev('message_delta', { delta: { stop_reason: p.stop, stop_sequence: null }, usage: { output_tokens: u.output_tokens } }));
  out.push(ev('message_stop', {}));
  return out;
}

// ---- server -------------------------------------------------------------------------------

export async function startFakeAnthropic({ port = 0, host = '127.0.0.1' } = {}) {
  const stats = { count: 0, last: null, requests: [] };

  function json(res, status, obj, headers = {}) {
    const text = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_fake_01', ...headers });
    res.end(text);
  }

  function handle(req, res, raw) {
    const body = parseJson(raw);
    const rec = { method: req.method, path: req.url, headers: { ...req.headers }, body };
    stats.count++;
    stats.last = rec;
    stats.requests.push(rec);
    if (req.method !== 'POST' || req.url !== '/v1/messages') return json(res, 404, anthropicError('not_found_error', `Not found: ${req.url}`));
    if (req.headers['x-api-key'] !== FAKE_ANTHROPIC_KEY) return json(res, 401, anthropicError('authentication_error', 'invalid x-api-key'));
    if (req.headers['anthropic-version'] !== VERSION) return json(res, 400, anthropicError('invalid_request_error', 'anthropic-version: header is required'));
    const problem = validate(body);
    if (problem) return json(res, 400, anthropicError('invalid_request_error', problem));
    switch (body.model) {
      case 'claude-overloaded':
        return json(res, 529, anthropicError('overloaded_error', 'Overloaded'));
      case 'claude-ratelimit':
        return json(res, 429, anthropicError('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'), { 'retry-after': '3' });
      case 'claude-toolong':
        return json(res, 400, anthropicError('invalid_request_error', 'prompt is too long: 208656 tokens > 200000 maximum'));
      default:
        break;
    }
    if (!body.stream) return json(res, 200, messageObject(body, plan(body)));
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_fake_01' });
    if (body.model === 'claude-midstream-error') {
      const u = usageFor(body);
      res.write(ev('message_start', { message: { id: 'msg_fake_err', type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...u, output_tokens: 1 } } }));
      res.write(ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
      res.write(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Partial' } }));
      res.end(ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }));
      return;
    }
    // Several events per write and events split across writes: the gateway must not care.
    const bytes = Buffer.from(streamEvents(body, plan(body)).join(''), 'utf8');
    const third = Math.floor(bytes.length / 3);
    res.write(bytes.subarray(0, third));
    res.write(bytes.subarray(third, 2 * third + 1));
    res.end(bytes.subarray(2 * third + 1));
  }

  const srv = await startFakeServer({ port, host, unref: true, name: 'fake anthropic', onRequest: handle });
  return { url: srv.url, port: srv.port, stats, close: srv.close };
}

if (isMain(import.meta.url)) {
  const fake = await startFakeAnthropic({ port: Number(process.argv[2] || 0) });
  console.log(`fake Anthropic upstream on ${fake.url} (x-api-key: ${FAKE_ANTHROPIC_KEY})`);
}
