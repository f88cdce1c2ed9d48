// A fake OpenAI-compatible upstream for Tollgate's integration and e2e tests.
//
// It speaks OpenAI's wire format (shared/providers.md §1) byte for byte: chat.completion JSON,
// SSE chunks with `usage:null` on every chunk and a final `choices:[]` usage chunk only when
// `stream_options.include_usage` is true, `data: [DONE]`, OpenAI error bodies, embeddings in
// float and base64 (float32 little-endian), and the models list.
//
// Behaviour is chosen by the request body's `model` (the gateway rewrites the client's model
// name to the deployment's upstream name, so a config entry `model: openai/slow` reaches this
// server as `"model":"slow"`):
//   ok               "Hello from fake upstream." (stream: role chunk, 4 content chunks, finish)
//   tools            tool call to the first tool, or "Tool said: <content>" after a tool message
//   slow             headers after 1500 ms; stream chunks 200 ms apart
//   hang             never answers
//   fail500 fail429 fail400   OpenAI error bodies (429 carries retry-after: 7)
//   html502          502 with an HTML body
//   truncate         stream: two chunks then the socket is destroyed (no [DONE]);
//                    non-stream: half the JSON with the full content-length, then destroyed
//   midstream-error  one chunk, then `data: {"error":…}`, then [DONE]
//   many             200 content chunks "0 ", "1 ", … "199 " written quickly
// Token counts: prompt_tokens = ceil(total characters of message contents / 4);
// completion_tokens = 5 (200 for `many`).
//
// Library use:   const fake = await startFakeOpenAI({ port: 0 });  … fake.stats …  await fake.close();
//   (the server and its sockets are unref'd unless `unref: false`, so a test file whose test
//   failed before close() still exits)
// Standalone:    node tests/fakes/openai-upstream.mjs --port 8900
//
// Every request is recorded in `stats.requests` (method, path, headers, parsed body, raw body,
// exact response bytes written, status, timing, whether the client aborted). `stats.aborted`
// counts connections that the client (the gateway) closed before the response was complete —
// that is how a test proves a client disconnect cancels the upstream transfer.

import http from 'node:http';
import { EventEmitter } from 'node:events';
import { sleep, isMain, floatsToBase64 } from './common.mjs';

export { floatsToBase64 };

export const FAKE_API_KEY = 'fake-key';
export const FAKE_REPLY = 'Hello from fake upstream.';
export const FAKE_REPLY_PIECES = ['Hello', ' from', ' fake', ' upstream.'];
export const FAKE_CREATED = 1700000000;
export const FAKE_FINGERPRINT = 'fp_fake';
export const FAKE_TOOL_CALL_ID = 'call_fake_1';
export const FAKE_TOOL_ARGS = '{"city":"Paris"}';
export const FAKE_TOOL_ARG_PIECES = ['{"ci', 'ty":"Pa', 'ris"}'];
export const FAKE_MODES = [
  'ok', 'tools', 'slow', 'hang', 'fail500', 'fail429', 'fail400', 'html502', 'truncate',
  'midstream-error', 'many',
];
export const SLOW_HEADER_DELAY_MS = 1500;
export const SLOW_CHUNK_INTERVAL_MS = 200;
export const MANY_CHUNKS = 200;
export const EMBEDDING_DIMS = 8;

export const ERROR_BODIES = {
  unauthorized: {
    error: {
      message: 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  },
  fail500: {
    error: {
      message: 'The server had an error while processing your request. Sorry about that!',
      type: 'server_error',
      param: null,
      code: null,
    },
  },
  fail429: {
    error: {
      message: 'Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.',
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    },
  },
  fail400: {
    error: {
      message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 204308 tokens. Please reduce the length of the messages.",
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    },
  },
  midstream: {
    error: {
      message: 'The upstream model failed while generating.',
      type: 'server_error',
      param: null,
      code: 'internal_error',
    },
  },
};

export const HTML_502_BODY =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n' +
  '<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

const MAX_RECORDED_REQUESTS = 5000;

// ---------------------------------------------------------------------------------------------
// Deterministic helpers (exported so tests can compute expected values)

/** Characters of every message's content: strings, text parts, and tool-call arguments ignored. */
export function contentChars(messages) {
  let n = 0;
  if (!Array.isArray(messages)) return 0;
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const c = m.content;
    if (typeof c === 'string') n += c.length;
    else if (Array.isArray(c)) {
      for (const part of c) {
        if (part && typeof part.text === 'string') n += part.text.length;
      }
    }
  }
  return n;
}

export function promptTokens(messages) {
  return Math.ceil(contentChars(messages) / 4);
}

function usageFor(messages, completionTokens) {
  const p = promptTokens(messages);
  return { prompt_tokens: p, completion_tokens: completionTokens, total_tokens: p + completionTokens };
}

function fnv1a(str) {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(str, 'utf8');
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The fake's embedding of one input item (string, token array, …): 8 values in [-1, 1) that are
 * exactly representable as float32 (16-bit numerators over 2^15), so float and base64 agree.
 */
export function fakeEmbedding(item) {
  const key = typeof item === 'string' ? item : JSON.stringify(item);
  const v = [];
  for (let i = 0; i < EMBEDDING_DIMS; i++) {
    const h = fnv1a(`${i}:${key}`) & 0xffff;
    v.push((h - 32768) / 32768);
  }
  return v;
}

export function base64ToFloats(b64) {
  const buf = Buffer.from(b64, 'base64');
  const out = [];
  for (let i = 0; i + 4 <= buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

function embeddingInputs(input) {
  if (typeof input === 'string') return [input];
  if (Array.isArray(input)) {
    if (input.length === 0) return [];
    if (input.every((x) => typeof x === 'number')) return [input]; // one token array
    return input;
  }
  return null;
}

function embeddingTokens(items) {
  let chars = 0;
  for (const it of items) chars += typeof it === 'string' ? it.length : JSON.stringify(it).length;
  return Math.ceil(chars / 4);
}

function sse(obj) {
  return `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
}

// ---------------------------------------------------------------------------------------------

/**
 * Starts the fake. Returns { url, port, close(), stats, events, waitFor(pred, ms), reset() }.
 * `url` is the base WITH /v1 (what a deployment's api_base should be).
 */
export async function startFakeOpenAI({ port = 0, host = '127.0.0.1', unref = true } = {}) {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const sockets = new Set();
  const timers = new Set();
  let seq = 0;

  const stats = newStats();
  function newStats() {
    return {
      count: 0, // requests received (all paths)
      byPath: {}, // '/v1/chat/completions' → count
      last: {}, // path → { headers, body, rawBody, model, ... } of the latest request
      requests: [], // every request record, oldest first (capped)
      aborted: 0, // requests whose client closed the connection before the response was complete
      completed: 0, // responses fully written
      active: 0, // requests in flight
      connections: 0, // TCP connections accepted
    };
  }

  function later(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });
  }

  const server = http.createServer({ keepAliveTimeout: 65000, requestTimeout: 0 });
  server.headersTimeout = 60000;
  server.on('connection', (sock) => {
    stats.connections++;
    sockets.add(sock);
    sock.setNoDelay(true);
    if (unref) sock.unref(); // never keep a test process alive on our own
    sock.on('close', () => sockets.delete(sock));
  });

  server.on('request', (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      handle(req, res, rawBody).catch((err) => {
        // A bug in the fake must be visible, not silently hang a test.
        console.error('fake upstream handler error:', err);
        if (!res.headersSent) {
          res.writeHead(599, { 'content-type': 'text/plain' });
        }
        res.destroy();
      });
    });
  });

  async function handle(req, res, rawBody) {
    const url = new URL(req.url, 'http://fake');
    const path = url.pathname.replace(/\/+$/, '');
    const route = path.startsWith('/v1/') ? path.slice(3) : path;

    let body = null;
    let parseError = null;
    if (rawBody.length) {
      try {
        body = JSON.parse(rawBody.toString('utf8'));
      } catch (e) {
        parseError = e;
      }
    }

    const rec = {
      id: ++seq,
      method: req.method,
      path,
      route,
      headers: { ...req.headers },
      rawHeaders: [...req.rawHeaders],
      rawBody,
      body,
      model: body && typeof body === 'object' ? body.model : undefined,
      stream: !!(body && body.stream === true),
      status: null,
      responseHeaders: null,
      sent: [], // Buffers of response body bytes, in write order
      get sentBytes() {
        return Buffer.concat(this.sent);
      },
      get sentText() {
        return Buffer.concat(this.sent).toString('utf8');
      },
      startedAt: Date.now(),
      headersAt: null,
      firstByteAt: null,
      finishedAt: null,
      closedAt: null,
      aborted: false,
      selfDestroyed: false,
    };
    stats.count++;
    stats.byPath[path] = (stats.byPath[path] || 0) + 1;
    stats.last[path] = rec;
    if (route !== path) stats.last[route] = rec; // also reachable without the /v1 prefix
    stats.requests.push(rec);
    if (stats.requests.length > MAX_RECORDED_REQUESTS) stats.requests.shift();
    stats.active++;

    res.on('close', () => {
      stats.active--;
      rec.closedAt = Date.now();
      if (res.writableFinished) {
        stats.completed++;
        events.emit('finished', rec);
      } else if (!rec.selfDestroyed) {
        rec.aborted = true;
        stats.aborted++;
        events.emit('aborted', rec);
      } else {
        events.emit('destroyed', rec);
      }
    });
    events.emit('request', rec);

    const io = makeIO(res, rec);

    // Auth first, as OpenAI does.
    const auth = req.headers.authorization || '';
    if (auth !== `Bearer ${FAKE_API_KEY}`) {
      return io.json(401, ERROR_BODIES.unauthorized);
    }

    if (req.method === 'GET' && route === '/models') {
      return io.json(200, {
        object: 'list',
        data: FAKE_MODES.map((id) => ({ id, object: 'model', created: FAKE_CREATED, owned_by: 'fake' })),
      });
    }
    if (req.method === 'GET' && route.startsWith('/models/')) {
      const id = decodeURIComponent(route.slice('/models/'.length));
      if (!FAKE_MODES.includes(id)) return io.json(404, modelNotFound(id));
      return io.json(200, { id, object: 'model', created: FAKE_CREATED, owned_by: 'fake' });
    }

    const isChat = route === '/chat/completions';
    const isEmb = route === '/embeddings';
    if (!isChat && !isEmb) {
      return io.json(404, {
        error: { message: `Invalid URL (${req.method} ${path})`, type: 'invalid_request_error', param: null, code: null },
      });
    }
    if (req.method !== 'POST') {
      return io.json(405, {
        error: { message: `Method ${req.method} not allowed`, type: 'invalid_request_error', param: null, code: null },
      });
    }
    if (parseError || !body || typeof body !== 'object' || Array.isArray(body)) {
      return io.json(400, {
        error: {
          message: "We could not parse the JSON body of your request.",
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      });
    }
    const model = body.model;
    if (typeof model !== 'string' || !FAKE_MODES.includes(model)) {
      return io.json(404, modelNotFound(model));
    }

    // Modes that behave the same on every endpoint.
    switch (model) {
      case 'hang':
        return; // never answer; the request stays open until the client gives up
      case 'fail500':
        return io.json(500, ERROR_BODIES.fail500);
      case 'fail429':
        return io.json(429, ERROR_BODIES.fail429, { 'retry-after': '7' });
      case 'fail400':
        return io.json(400, ERROR_BODIES.fail400);
      case 'html502':
        return io.send(502, { 'content-type': 'text/html' }, HTML_502_BODY);
      case 'slow':
        await later(SLOW_HEADER_DELAY_MS);
        if (res.destroyed) return;
        break;
      default:
        break;
    }

    if (isEmb) return embeddings(io, body);
    return chat(io, body, rec);
  }

  function modelNotFound(model) {
    return {
      error: {
        message: `The model \`${model}\` does not exist or you do not have access to it.`,
        type: 'invalid_request_error',
        param: null,
        code: 'model_not_found',
      },
    };
  }

  // Response writer that records every byte written.
  function makeIO(res, rec) {
    function head(status, headers) {
      rec.status = status;
      rec.responseHeaders = headers;
      rec.headersAt = Date.now();
      res.writeHead(status, headers);
      if (typeof res.flushHeaders === 'function') res.flushHeaders();
    }
    function write(data) {
      if (res.destroyed || res.writableEnded) return false;
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
      rec.sent.push(buf);
      if (rec.firstByteAt === null) rec.firstByteAt = Date.now();
      return res.write(buf);
    }
    function end(data) {
      if (res.destroyed || res.writableEnded) return;
      if (data !== undefined) write(data);
      rec.finishedAt = Date.now();
      res.end();
    }
    function send(status, headers, data) {
      const buf = Buffer.from(data, 'utf8');
      head(status, { ...headers, 'content-length': String(buf.length) });
      end(buf);
    }
    function json(status, obj, extraHeaders = {}) {
      send(status, { 'content-type': 'application/json', ...extraHeaders, 'x-request-id': `req_fake_${rec.id}` }, JSON.stringify(obj));
    }
    async function destroyAfterFlush() {
      rec.selfDestroyed = true;
      // Let everything written so far reach the kernel, then give the peer a moment to read it.
      await new Promise((resolve) => res.write('', () => resolve()));
      await later(50);
      res.destroy();
    }
    return { res, rec, head, write, end, send, json, destroyAfterFlush };
  }

  function embeddings(io, body) {
    const items = embeddingInputs(body.input);
    if (!items || items.length === 0) {
      return io.json(400, {
        error: { message: "'input' is a required property", type: 'invalid_request_error', param: 'input', code: null },
      });
    }
    const b64 = body.encoding_format === 'base64';
    const data = items.map((it, index) => {
      const v = fakeEmbedding(it);
      return { object: 'embedding', index, embedding: b64 ? floatsToBase64(v) : v };
    });
    const t = embeddingTokens(items);
    if (body.model === 'truncate') {
      const full = Buffer.from(JSON.stringify({ object: 'list', data, model: body.model, usage: { prompt_tokens: t, total_tokens: t } }));
      io.head(200, { 'content-type': 'application/json', 'content-length': String(full.length) });
      io.write(full.subarray(0, full.length >> 1));
      return io.destroyAfterFlush();
    }
    return io.json(200, { object: 'list', data, model: body.model, usage: { prompt_tokens: t, total_tokens: t } });
  }

  async function chat(io, body, rec) {
    const model = body.model;
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const id = `chatcmpl-fake-${rec.id}`;
    const last = messages[messages.length - 1];
    const hasTools = Array.isArray(body.tools) && body.tools.length > 0;

    // What to answer: either text pieces or one tool call.
    let pieces = FAKE_REPLY_PIECES;
    let toolCall = null;
    let completionTokens = 5;
    if (model === 'tools') {
      if (last && last.role === 'tool') {
        const content = typeof last.content === 'string' ? last.content
          : Array.isArray(last.content) ? last.content.map((p) => (p && p.text) || '').join('') : '';
        const text = `Tool said: ${content}`;
        pieces = text.split(/(?= )/); // keeps the spaces, each piece non-empty
      } else if (hasTools) {
        const fn = body.tools[0].function || body.tools[0];
        toolCall = { id: FAKE_TOOL_CALL_ID, name: fn.name };
      }
    } else if (model === 'many') {
      pieces = Array.from({ length: MANY_CHUNKS }, (_, i) => `${i} `);
      completionTokens = MANY_CHUNKS;
    } else if (model === 'midstream-error') {
      pieces = ['Partial'];
    }
    const usage = usageFor(messages, completionTokens);
    const finishReason = toolCall ? 'tool_calls' : 'stop';

    if (!rec.stream) {
      const message = toolCall
        ? {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: FAKE_TOOL_ARGS } }],
            refusal: null,
          }
        : { role: 'assistant', content: pieces.join(''), refusal: null };
      const resp = {
        id,
        object: 'chat.completion',
        created: FAKE_CREATED,
        model,
        system_fingerprint: FAKE_FINGERPRINT,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }],
        usage,
      };
      if (model === 'truncate') {
        const full = Buffer.from(JSON.stringify(resp));
        io.head(200, { 'content-type': 'application/json', 'content-length': String(full.length) });
        io.write(full.subarray(0, full.length >> 1));
        return io.destroyAfterFlush();
      }
      if (model === 'midstream-error') {
        // No "mid stream" without a stream: answer with the error as a 500.
        return io.json(500, ERROR_BODIES.midstream);
      }
      return io.json(200, resp);
    }

    // Streaming.
    const includeUsage = !!(body.stream_options && body.stream_options.include_usage === true);
    const chunk = (choices, extra = {}) => {
      const c = { id, object: 'chat.completion.chunk', created: FAKE_CREATED, model, system_fingerprint: FAKE_FINGERPRINT, choices };
      if (includeUsage) c.usage = null;
      Object.assign(c, extra);
      return sse(c);
    };
    const delta = (d, finish = null) => [{ index: 0, delta: d, logprobs: null, finish_reason: finish }];

    const events = [];
    if (toolCall) {
      events.push(chunk(delta({
        role: 'assistant',
        content: null,
        tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: '' } }],
      })));
      for (const a of FAKE_TOOL_ARG_PIECES) {
        events.push(chunk(delta({ tool_calls: [{ index: 0, function: { arguments: a } }] })));
      }
    } else if (model === 'midstream-error') {
      events.push(chunk(delta({ role: 'assistant', content: pieces[0] })));
      events.push(sse(ERROR_BODIES.midstream));
    } else {
      events.push(chunk(delta({ role: 'assistant', content: '' })));
      for (const p of pieces) events.push(chunk(delta({ content: p })));
    }
    if (model !== 'midstream-error') {
      events.push(chunk(delta({}, finishReason)));
      if (includeUsage) events.push(chunk([], { usage }));
    }
    events.push(sse('[DONE]'));

    io.head(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': `req_fake_${rec.id}` });

    if (model === 'truncate') {
      io.write(events[0]);
      io.write(events[1]);
      return io.destroyAfterFlush();
    }
    if (model === 'slow') {
      for (let i = 0; i < events.length; i++) {
        if (i > 0) await later(SLOW_CHUNK_INTERVAL_MS);
        if (io.res.destroyed) return;
        io.write(events[i]);
      }
      return io.end();
    }
    if (model === 'many') {
      for (let i = 0; i < events.length; i++) {
        if (io.res.destroyed) return;
        const ok = io.write(events[i]);
        if (!ok) await new Promise((r) => io.res.once('drain', r));
        else if (i % 10 === 9) await new Promise((r) => setImmediate(r));
      }
      return io.end();
    }
    for (const e of events) {
      if (io.res.destroyed) return;
      io.write(e);
    }
    io.end();
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  if (unref) server.unref();
  const actualPort = server.address().port;
  const url = `http://${host}:${actualPort}/v1`;

  let closed = false;
  async function close() {
    if (closed) return;
    closed = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    const done = new Promise((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
    await done;
  }

  /** Polls `pred(stats)` until true; rejects after `ms`. */
  async function waitFor(pred, ms = 2000, what = 'condition') {
    const deadline = Date.now() + ms;
    for (;;) {
      if (pred(stats)) return;
      if (Date.now() > deadline) throw new Error(`fake upstream: timed out after ${ms} ms waiting for ${what}`);
      await sleep(10);
    }
  }

  /** Forgets recorded requests and counters (not open connections). */
  function reset() {
    Object.assign(stats, newStats(), { active: stats.active });
  }

  /** Requests recorded for a path ('/v1/chat/completions' or '/chat/completions'). */
  function requestsFor(route) {
    const r = route.startsWith('/v1/') ? route.slice(3) : route;
    return stats.requests.filter((x) => x.route === r);
  }

  return { url, base: `http://${host}:${actualPort}`, port: actualPort, host, close, stats, events, waitFor, reset, requestsFor, server };
}

// ---------------------------------------------------------------------------------------------
// Standalone: node tests/fakes/openai-upstream.mjs [--port N] [--host H]

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  let port = 0;
  let host = '127.0.0.1';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port') port = Number(args[++i]);
    else if (args[i].startsWith('--port=')) port = Number(args[i].slice(7));
    else if (args[i] === '--host') host = args[++i];
    else if (args[i].startsWith('--host=')) host = args[i].slice(7);
    else if (args[i] === '--help' || args[i] === '-h') {
      console.log('usage: node tests/fakes/openai-upstream.mjs [--port N] [--host 127.0.0.1]');
      process.exit(0);
    } else {
      console.error(`unknown argument: ${args[i]}`);
      process.exit(2);
    }
  }
  const fake = await startFakeOpenAI({ port, host, unref: false });
  console.log(`fake OpenAI upstream listening on ${fake.url} (api key: ${FAKE_API_KEY}; models: ${FAKE_MODES.join(', ')})`);
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
