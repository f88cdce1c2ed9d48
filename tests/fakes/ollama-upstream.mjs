// A fake Ollama server speaking the native API (shared/providers.md §6.1) for Tollgate's e2e tests.
//
//   POST /api/chat    NDJSON stream (Content-Type application/x-ndjson, one object per line, no
//                     sentinel, the done:true line carries done_reason and the counts) or, with
//                     "stream":false, one object; "stream" defaults to TRUE as in Ollama.
//   POST /api/embed   {"model","embeddings":[[…]],"prompt_eval_count"}.
//   errors            {"error":"<text>"} with the status Ollama uses.
//
// Requests are checked the way Ollama's Go decoder would: message content must be a string,
// tool-call arguments an object, images base64 strings, options an object; violations answer 400
// with Go's wording. Behaviour is chosen by the body's `model` (the gateway sends the deployment's
// upstream name):
//   llama3.2          "Hello from fake Ollama." (stream: 4 content lines, then done)
//   qwen-tools        tool call to the first tool with {"city":"Paris"} (whole, in one done:false
//                     line, no id — like Ollama before 0.12); after a tool message:
//                     "Tool said: <content of the last tool message>"
//   midstream-error   one content line, then {"error":…} under status 200
//   truncate          one content line, then the socket is destroyed (no done line)
//   busy              503 {"error":"server busy, please try again.  maximum pending requests exceeded"}
//   anything else     404 {"error":"model \"<name>\" not found, try pulling it first"}
// Stream lines are written in two halves with a pause between, so the gateway sees lines split
// across reads. Token counts: prompt_eval_count = ceil(characters of message contents / 4),
// eval_count = 4 (tools: 12).
//
// Library use:  const fake = await startFakeOllama();  … fake.requests …  await fake.close();

import { sleep, isMain, stringContentTokens, parseJson, startFakeServer } from './common.mjs';

export const OLLAMA_REPLY_PIECES = ['Hello', ' from', ' fake', ' Ollama.'];
export const OLLAMA_REPLY = OLLAMA_REPLY_PIECES.join('');
export const OLLAMA_TOOL_ARGS = { city: 'Paris' };
export const OLLAMA_EMBED_DIMS = 8;
export const OLLAMA_MIDSTREAM_ERROR = 'an error was encountered while running the model: unexpected EOF';

/** Prompt tokens the fake reports: ceil(characters of string contents / 4). */
export const promptEvalCount = stringContentTokens;

/** 8 values exactly representable as float32, so float and base64 answers agree. */
export function ollamaEmbedding(text) {
  const v = [];
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  for (let i = 0; i < OLLAMA_EMBED_DIMS; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
    v.push(((h & 0xffff) - 32768) / 32768);
  }
  return v;
}

function goTypeError(value, field, want) {
  const got = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value === 'object' ? 'object' : typeof value;
  return `json: cannot unmarshal ${got} into Go struct field ${field} of type ${want}`;
}

/** What Ollama's decoder would reject in a /api/chat body, or null. */
function chatProblem(body) {
  if (!Array.isArray(body.messages)) return goTypeError(body.messages, 'ChatRequest.messages', '[]api.Message');
  if ('stream' in body && typeof body.stream !== 'boolean') return goTypeError(body.stream, 'ChatRequest.stream', 'bool');
  if ('options' in body && (typeof body.options !== 'object' || Array.isArray(body.options)))
    return goTypeError(body.options, 'ChatRequest.options', 'map[string]interface {}');
  for (const m of body.messages) {
    if (typeof m.role !== 'string') return goTypeError(m.role, 'Message.messages.role', 'string');
    if ('content' in m && typeof m.content !== 'string') return goTypeError(m.content, 'Message.messages.content', 'string');
    for (const img of m.images || []) {
      if (typeof img !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(img)) return 'illegal base64 data at input byte 0';
    }
    for (const tc of m.tool_calls || []) {
      const a = tc.function && tc.function.arguments;
      if (typeof a !== 'object' || a === null || Array.isArray(a))
        return goTypeError(a, 'ToolCallFunction.messages.tool_calls.function.arguments', 'api.ToolCallFunctionArguments');
    }
  }
  return null;
}

function line(obj) {
  return JSON.stringify(obj) + '\n';
}

function baseChunk(model, content, extra = {}) {
  return { model, created_at: new Date().toISOString(), message: { role: 'assistant', content, ...extra }, done: false };
}

function doneChunk(model, body, evalCount, content = '', extra = {}) {
  return {
    model,
    created_at: new Date().toISOString(),
    message: { role: 'assistant', content, ...extra },
    done_reason: 'stop',
    done: true,
    total_duration: 182242375,
    load_duration: 41295167,
    prompt_eval_count: promptEvalCount(body.messages),
    prompt_eval_duration: 24573166,
    eval_count: evalCount,
    eval_duration: 115959084,
  };
}

/** The reply for a chat body: { pieces: [...], toolCalls: [...] | null, evalCount }. */
function planChat(body) {
  if (body.model !== 'qwen-tools') return { pieces: OLLAMA_REPLY_PIECES, toolCalls: null, evalCount: 4 };
  const last = body.messages[body.messages.length - 1];
  if (last && last.role === 'tool') return { pieces: ['Tool said: ', last.content], toolCalls: null, evalCount: 5 };
  const name = (body.tools && body.tools[0] && body.tools[0].function && body.tools[0].function.name) || 'tool';
  return { pieces: [], toolCalls: [{ function: { name, arguments: OLLAMA_TOOL_ARGS } }], evalCount: 12 };
}

export async function startFakeOllama({ port = 0, host = '127.0.0.1' } = {}) {
  const requests = [];

  async function writeLines(res, lines) {
    for (const l of lines) {
      const cut = Math.floor(l.length / 2);
      res.write(l.slice(0, cut));
      await sleep(2);
      res.write(l.slice(cut));
      await sleep(2);
    }
  }

  async function chat(body, res, send) {
    const problem = chatProblem(body);
    if (problem) return send(400, { error: problem });
    if (body.model === 'busy') return send(503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
    const known = ['llama3.2', 'qwen-tools', 'midstream-error', 'truncate'];
    if (!known.includes(body.model)) return send(404, { error: `model "${body.model}" not found, try pulling it first` });
    const plan = planChat(body);
    const stream = body.stream !== false; // Ollama streams unless told otherwise
    if (!stream) {
      const extra = plan.toolCalls ? { tool_calls: plan.toolCalls } : {};
      return send(200, doneChunk(body.model, body, plan.evalCount, plan.pieces.join(''), extra));
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const lines = plan.pieces.map((p) => line(baseChunk(body.model, p)));
    if (plan.toolCalls) lines.push(line(baseChunk(body.model, '', { tool_calls: plan.toolCalls })));
    if (body.model === 'midstream-error') {
      await writeLines(res, [lines[0], line({ error: OLLAMA_MIDSTREAM_ERROR })]);
      return res.end();
    }
    if (body.model === 'truncate') {
      await writeLines(res, [lines[0]]);
      return res.destroy();
    }
    lines.push(line(doneChunk(body.model, body, plan.evalCount)));
    await writeLines(res, lines);
    res.end();
  }

  function embed(body, send) {
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    if (!Array.isArray(inputs) || !inputs.every((x) => typeof x === 'string'))
      return send(400, { error: 'invalid input type' });
    if (body.model !== 'all-minilm') return send(404, { error: `model "${body.model}" not found, try pulling it first` });
    let chars = 0;
    for (const s of inputs) chars += s.length;
    return send(200, {
      model: body.model,
      embeddings: inputs.map((s) => ollamaEmbedding(s)),
      total_duration: 14143917,
      load_duration: 1019500,
      prompt_eval_count: Math.ceil(chars / 4),
    });
  }

  function onRequest(req, res, bytes) {
    const raw = bytes.toString('utf8');
    const body = parseJson(bytes);
    const rec = { method: req.method, path: req.url, headers: { ...req.headers }, body, raw };
    requests.push(rec);
    const send = (status, obj) => {
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(obj));
    };
    if (req.method !== 'POST') return send(405, { error: 'method not allowed' });
    if (body === null || typeof body !== 'object') return send(400, { error: 'invalid character looking for beginning of value' });
    return req.url === '/api/chat' ? chat(body, res, send) : req.url === '/api/embed' ? embed(body, send) : send(404, { error: '404 page not found' });
  }

  const srv = await startFakeServer({ port, host, name: 'fake ollama', onRequest });
  return { url: srv.url, requests, last: (path) => [...requests].reverse().find((r) => r.path === path), close: srv.close };
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const fake = await startFakeOllama({ port: i > 0 ? Number(process.argv[i + 1]) : 11434 });
  console.log(`fake Ollama on ${fake.url}`);
}
