// A fake AWS Bedrock Runtime for Tollgate's e2e tests (shared/providers.md §5).
//
// It speaks Bedrock's wire formats: POST /model/{modelId}/converse (Converse JSON),
// /model/{modelId}/converse-stream (application/vnd.amazon.eventstream: binary frames with both
// CRC32s, payloads padded with "p" like the real service, headers :event-type, :content-type,
// :message-type), and /model/{modelId}/invoke for Titan and Cohere embeddings. Errors are
// {"message": …} bodies with an x-amzn-ErrorType header.
//
// It checks what a translator can get wrong, the way the real service does:
//   - SigV4: the Authorization header is recomputed from the request as received (method, the
//     raw path encoded once more, content-type;host;x-amz-date[;x-amz-security-token], SHA-256 of
//     the body, signing name "bedrock") with FAKE_AWS_CREDS; a mismatch answers 403
//     InvalidSignatureException. `Authorization: Bearer FAKE_BEDROCK_API_KEY` is accepted too.
//   - Converse bodies: messages non-empty, roles user/assistant alternating and starting with
//     user, every content block a union with exactly one known key, toolUse input an object,
//     toolResult only in user turns and answering a toolUse id of the previous assistant turn,
//     toolConfig present whenever toolUse/toolResult blocks are, toolChoice needs tools, no
//     unknown top-level or inferenceConfig keys. Violations answer 400 ValidationException.
//
// Behaviour by model id (the deployment's upstream model, URL-decoded):
//   anthropic.claude-ok-v1:0          "Hello from fake Bedrock." (stream: four text deltas)
//   anthropic.claude-tools-v1:0       toolResult blocks in the last user turn → "Tool said: <texts
//                                     joined by ' | '>"; else "Let me check." then one toolUse per
//                                     requested tool (at most two; inputs BEDROCK_TOOL_INPUTS),
//                                     stopReason tool_use; input streamed in fragments
//   anthropic.claude-throttle-v1:0    429 ThrottlingException
//   anthropic.claude-toolong-v1:0     400 ValidationException "Input is too long for requested model."
//   anthropic.claude-notready-v1:0    429 ModelNotReadyException (with __type in the body)
//   anthropic.claude-midstream-v1:0   stream: one text delta, then a throttlingException frame
//   amazon.titan-embed-text-v2:0      {"embedding":[…],"inputTextTokenCount":n} (one inputText)
//   cohere.embed-english-v3           {"embeddings":[[…]…],"response_type":"embeddings_floats",…}
// Usage: inputTokens = ceil(characters of all text / 4), cacheReadInputTokens = 4,
// outputTokens = 7 — so OpenAI's prompt_tokens is inputTokens + 4 (see expectedOpenAIUsage).
//
// Library use: const fake = await startFakeBedrock();  fake.url (the api_base),
// fake.stats.last (latest request: path, headers, body), await fake.close().

import crypto from 'node:crypto';
import { isMain, parseJson, startFakeServer } from './common.mjs';

export const FAKE_AWS_CREDS = {
  accessKeyId: 'AKIDFAKEBEDROCK',
  secretAccessKey: 'fake/Secret+Key/ForTollgateTests0123456789',
  sessionToken: 'IQoJb3JpZ2luX2VjFAKE//session+token=',
  region: 'us-west-2',
};
export const FAKE_BEDROCK_API_KEY = 'bedrock-api-key-fake';
export const BEDROCK_REPLY = 'Hello from fake Bedrock.';
export const BEDROCK_REPLY_PIECES = ['Hello', ' from', ' fake', ' Bedrock.'];
export const BEDROCK_TOOL_INPUTS = [{ city: 'Paris' }, { tz: 'Europe/Paris' }];
export const BEDROCK_USAGE = { cacheRead: 4, output: 7 };
export const EMBED_DIMS = 6;

// ---------------------------------------------------------------------------------------------
// event-stream framing

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function stringHeader(name, value) {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(v.length);
  return Buffer.concat([Buffer.from([n.length]), n, Buffer.from([7]), len, v]);
}

export function frame(headers, payload) {
  const hb = Buffer.concat(headers.map(([k, v]) => stringHeader(k, v)));
  const total = 16 + hb.length + payload.length;
  const prelude = Buffer.alloc(12);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(hb.length, 4);
  prelude.writeUInt32BE(crc32(prelude.subarray(0, 8)), 8);
  const body = Buffer.concat([prelude, hb, payload]);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(crc32(body));
  return Buffer.concat([body, tail]);
}

let padSeq = 0;
function padded(obj) {
  // real streams carry a random-length "p" member to obscure token lengths
  padSeq = (padSeq + 7) % 23;
  return { ...obj, p: 'abcdefghijklmnopqrstuvwxyz'.slice(0, padSeq + 1) };
}

function eventFrame(type, obj) {
  return frame([[':event-type', type], [':content-type', 'application/json'], [':message-type', 'event']],
    Buffer.from(JSON.stringify(padded(obj))));
}

function exceptionFrame(type, message) {
  return frame([[':exception-type', type], [':content-type', 'application/json'], [':message-type', 'exception']],
    Buffer.from(JSON.stringify({ message })));
}

// ---------------------------------------------------------------------------------------------
// SigV4 verification

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();

function awsEncode(s) {
  return Buffer.from(s, 'utf8')
    .toString('latin1')
    .replace(/[^A-Za-z0-9\-_.~/]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** The signature AWS would compute for this request; null when the Authorization is malformed. */
export function expectedSignature(method, rawPath, headers, body, creds = FAKE_AWS_CREDS) {
  const auth = headers.authorization || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return null;
  const [, akid, date, region, service, signed] = m;
  const names = signed.split(';');
  const canonHeaders = names.map((n) => `${n}:${String(headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const creq = [method, awsEncode(rawPath), '', canonHeaders, signed, sha256(body)].join('\n');
  const amzDate = headers['x-amz-date'] || '';
  const scope = `${date}/${region}/${service}/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(creq)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, date), region), service), 'aws4_request');
  return {
    akid, region, service, names, date, amzDate,
    signature: crypto.createHmac('sha256', key).update(sts).digest('hex'),
    given: m[6],
  };
}

function checkAuth(req, rawPath, body) {
  const auth = req.headers.authorization || '';
  if (auth === `Bearer ${FAKE_BEDROCK_API_KEY}`) return null;
  const e = expectedSignature(req.method, rawPath, req.headers, body);
  if (!e) return ['UnrecognizedClientException', 403, 'The security token included in the request is invalid.'];
  const must = ['content-type', 'host', 'x-amz-date'];
  if (req.headers['x-amz-security-token'] !== undefined) must.push('x-amz-security-token');
  const sorted = [...e.names].sort().join(';');
  if (e.akid !== FAKE_AWS_CREDS.accessKeyId) return ['UnrecognizedClientException', 403, 'The security token included in the request is invalid.'];
  if (e.service !== 'bedrock' || e.region !== FAKE_AWS_CREDS.region || sorted !== e.names.join(';') ||
      must.some((h) => !e.names.includes(h)) || !e.amzDate.startsWith(e.date)) {
    return ['InvalidSignatureException', 403, `Credential should be scoped correctly (got ${e.region}/${e.service}, signed ${e.names.join(';')}).`];
  }
  if (e.signature !== e.given) {
    return ['InvalidSignatureException', 403, 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.'];
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Converse validation and answers

const BLOCK_KEYS = new Set(['text', 'image', 'document', 'video', 'toolUse', 'toolResult', 'guardContent', 'cachePoint', 'reasoningContent']);
const TOP_KEYS = new Set(['messages', 'system', 'inferenceConfig', 'toolConfig', 'guardrailConfig', 'additionalModelRequestFields', 'performanceConfig', 'promptVariables', 'requestMetadata']);
const INFERENCE_KEYS = new Set(['maxTokens', 'temperature', 'topP', 'stopSequences']);

/** Returns a ValidationException message, or null when the Converse body is acceptable. */
export function validateConverse(body) {
  if (!body || typeof body !== 'object') return 'Malformed input request, please reformat your input and try again.';
  for (const k of Object.keys(body)) if (!TOP_KEYS.has(k)) return `Malformed input request: #: extraneous key [${k}] is not permitted`;
  const msgs = body.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) return 'A conversation must start with a user message.';
  let usesTools = false;
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i];
    if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: must be user or assistant`;
    if (i === 0 && m.role !== 'user') return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
    if (i > 0 && msgs[i - 1].role === m.role) return 'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.';
    if (!Array.isArray(m.content) || m.content.length === 0) return `messages.${i}.content: must not be empty`;
    const prevIds = i > 0 ? msgs[i - 1].content.filter((b) => b.toolUse).map((b) => b.toolUse.toolUseId) : [];
    for (const [j, b] of m.content.entries()) {
      const keys = Object.keys(b || {});
      if (keys.length !== 1 || !BLOCK_KEYS.has(keys[0])) return `messages.${i}.content.${j}: a content block must have exactly one member`;
      if (b.text !== undefined && (typeof b.text !== 'string' || b.text.trim() === '')) return `The text field in the ContentBlock object at messages.${i}.content.${j} is blank. Add text to the text field, and try again.`;
      if (b.toolUse) {
        usesTools = true;
        if (m.role !== 'assistant') return `messages.${i}.content.${j}: toolUse is only allowed in assistant turns`;
        const t = b.toolUse;
        if (typeof t.toolUseId !== 'string' || typeof t.name !== 'string' || !t.input || typeof t.input !== 'object' || Array.isArray(t.input)) return `messages.${i}.content.${j}.toolUse is malformed`;
      }
      if (b.toolResult) {
        usesTools = true;
        if (m.role !== 'user') return `messages.${i}.content.${j}: toolResult is only allowed in user turns`;
        if (!prevIds.includes(b.toolResult.toolUseId)) return `messages.${i}.content.${j}: toolResult ${b.toolResult.toolUseId} does not answer a toolUse of the previous turn`;
        if (!Array.isArray(b.toolResult.content)) return `messages.${i}.content.${j}.toolResult.content must be a list`;
      }
      if (b.image && !(['png', 'jpeg', 'gif', 'webp'].includes(b.image.format) && typeof b.image.source?.bytes === 'string')) return `messages.${i}.content.${j}.image is malformed`;
    }
  }
  if (body.system !== undefined && (!Array.isArray(body.system) || body.system.some((b) => Object.keys(b).length !== 1))) return 'system: must be a list of blocks';
  for (const k of Object.keys(body.inferenceConfig || {})) if (!INFERENCE_KEYS.has(k)) return `inferenceConfig: extraneous key [${k}] is not permitted`;
  const tc = body.toolConfig;
  if (usesTools && !tc) return 'The toolConfig field must be defined when using toolUse and toolResult content blocks.';
  if (tc) {
    if (!Array.isArray(tc.tools) || tc.tools.length === 0) return 'toolConfig.tools must not be empty';
    for (const t of tc.tools) if (!t.toolSpec?.name || typeof t.toolSpec.inputSchema?.json !== 'object') return 'toolConfig.tools: malformed toolSpec';
    if (tc.toolChoice && Object.keys(tc.toolChoice).length !== 1) return 'toolConfig.toolChoice: exactly one of auto, any, tool';
  }
  return null;
}

function textChars(body) {
  let n = 0;
  const add = (blocks) => {
    for (const b of blocks || []) {
      if (typeof b.text === 'string') n += b.text.length;
      if (b.toolResult) add(b.toolResult.content);
    }
  };
  add(body.system);
  for (const m of body.messages || []) add(m.content);
  return n;
}

function bedrockUsage(body) {
  const input = Math.ceil(textChars(body) / 4);
  return {
    inputTokens: input,
    outputTokens: BEDROCK_USAGE.output,
    totalTokens: input + BEDROCK_USAGE.cacheRead + BEDROCK_USAGE.output,
    cacheReadInputTokens: BEDROCK_USAGE.cacheRead,
    cacheWriteInputTokens: 0,
  };
}

/** The OpenAI usage the gateway must report for a Converse body this fake answered. */
export function expectedOpenAIUsage(body) {
  const u = bedrockUsage(body);
  const prompt = u.inputTokens + u.cacheReadInputTokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.outputTokens,
    total_tokens: prompt + u.outputTokens,
    prompt_tokens_details: { cached_tokens: u.cacheReadInputTokens },
  };
}

/** The answer as content blocks plus the stopReason. */
function answer(model, body) {
  if (model.includes('claude-tools')) {
    const last = body.messages[body.messages.length - 1];
    const results = last.content.filter((b) => b.toolResult);
    if (results.length > 0) {
      const texts = results.map((r) => r.toolResult.content.map((c) => c.text ?? JSON.stringify(c.json)).join(''));
      return { blocks: [{ text: `Tool said: ${texts.join(' | ')}` }], stop: 'end_turn' };
    }
    const tools = (body.toolConfig?.tools || []).slice(0, 2);
    const blocks = [{ text: 'Let me check.' }];
    tools.forEach((t, i) => blocks.push({ toolUse: { toolUseId: `tooluse_fake_${i + 1}`, name: t.toolSpec.name, input: BEDROCK_TOOL_INPUTS[i] } }));
    return { blocks, stop: tools.length > 0 ? 'tool_use' : 'end_turn' };
  }
  return { blocks: [{ text: BEDROCK_REPLY }], stop: 'end_turn' };
}

function streamFrames(model, body) {
  const frames = [eventFrame('messageStart', { role: 'assistant' })];
  if (model.includes('claude-midstream')) {
    frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Partial' } }));
    frames.push(exceptionFrame('throttlingException', 'Too many tokens, please wait before trying again.'));
    return frames;
  }
  const { blocks, stop } = answer(model, body);
  blocks.forEach((b, i) => {
    if (b.text !== undefined) {
      const pieces = b.text === BEDROCK_REPLY ? BEDROCK_REPLY_PIECES : [b.text];
      for (const p of pieces) frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: i, delta: { text: p } }));
    } else {
      const t = b.toolUse;
      frames.push(eventFrame('contentBlockStart', { contentBlockIndex: i, start: { toolUse: { toolUseId: t.toolUseId, name: t.name } } }));
      const json = JSON.stringify(t.input);
      const cut = Math.floor(json.length / 2);
      frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: i, delta: { toolUse: { input: json.slice(0, cut) } } }));
      frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: i, delta: { toolUse: { input: json.slice(cut) } } }));
    }
    frames.push(eventFrame('contentBlockStop', { contentBlockIndex: i }));
  });
  frames.push(eventFrame('messageStop', { stopReason: stop }));
  frames.push(eventFrame('metadata', { usage: bedrockUsage(body), metrics: { latencyMs: 42 } }));
  return frames;
}

function embedding(text, i) {
  const h = crypto.createHash('sha256').update(`${i}:${text}`).digest();
  return Array.from({ length: EMBED_DIMS }, (_, k) => (h.readUInt16BE(2 * k) - 32768) / 32768);
}

/** The fake's vector for text: EMBED_DIMS float32-exact values. */
export function fakeBedrockEmbedding(text) {
  return embedding(text, 0);
}

// ---------------------------------------------------------------------------------------------

export async function startFakeBedrock({ port = 0, host = '127.0.0.1' } = {}) {
  const stats = { count: 0, last: null, requests: [] };

  function fail(res, type, status, message, extra = {}) {
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      'x-amzn-requestid': 'fake-request-id',
    });
    res.end(JSON.stringify({ message, ...extra }));
  }

  async function handle(req, res, raw) {
    const rawPath = req.url.split('?')[0];
    const m = /^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/.exec(rawPath);
    const body = parseJson(raw); // null when not JSON: validated below
    const rec = { method: req.method, path: rawPath, headers: { ...req.headers }, body, raw };
    stats.count++;
    stats.last = rec;
    stats.requests.push(rec);
    if (req.method !== 'POST' || !m) return fail(res, 'UnknownOperationException', 404, 'Unknown operation');
    const authProblem = checkAuth(req, rawPath, raw);
    if (authProblem) return fail(res, ...authProblem);
    const model = decodeURIComponent(m[1]);
    rec.model = model;
    if (req.headers['content-type'] !== 'application/json') return fail(res, 'ValidationException', 400, 'Content-Type must be application/json');
    if (m[2] === 'invoke') return invoke(res, model, body);
    if (model.includes('claude-throttle')) return fail(res, 'ThrottlingException', 429, 'Too many requests, please wait before trying again.');
    if (model.includes('claude-toolong')) return fail(res, 'ValidationException', 400, 'Input is too long for requested model.');
    if (model.includes('claude-notready')) return fail(res, 'ModelNotReadyException', 429, 'Model is not ready to serve inference requests.', { __type: 'ModelNotReadyException' });
    const problem = validateConverse(body);
    if (problem) return fail(res, 'ValidationException', 400, problem);
    if (m[2] === 'converse') {
      const { blocks, stop } = answer(model, body);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ output: { message: { role: 'assistant', content: blocks } }, stopReason: stop, usage: bedrockUsage(body), metrics: { latencyMs: 42 } }));
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'fake-request-id' });
    const bytes = Buffer.concat(streamFrames(model, body));
    // uneven writes: frames are cut across network reads
    for (let at = 0, step = 7; at < bytes.length; at += step, step = (step * 5) % 97 + 3) {
      res.write(bytes.subarray(at, Math.min(bytes.length, at + step)));
      await new Promise((r) => setImmediate(r));
    }
    res.end();
  }

  function invoke(res, model, body) {
    if (model.startsWith('amazon.titan-embed')) {
      if (!body || typeof body.inputText !== 'string' || Object.keys(body).some((k) => !['inputText', 'dimensions', 'normalize', 'embeddingTypes'].includes(k))) {
        return fail(res, 'ValidationException', 400, 'Malformed input request: expected {"inputText": string}');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      const v = fakeBedrockEmbedding(body.inputText);
      return res.end(JSON.stringify({ embedding: v, inputTextTokenCount: Math.ceil(body.inputText.length / 4), embeddingsByType: { float: v } }));
    }
    if (model.startsWith('cohere.embed')) {
      if (!body || !Array.isArray(body.texts) || typeof body.input_type !== 'string') {
        return fail(res, 'ValidationException', 400, 'Malformed input request: #: required key [input_type] not found');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ embeddings: body.texts.map((t) => fakeBedrockEmbedding(t)), id: 'fake-embed-id', response_type: 'embeddings_floats', texts: body.texts }));
    }
    return fail(res, 'ValidationException', 400, `The provided model identifier is invalid: ${model}`);
  }

  const srv = await startFakeServer({ port, host, unref: true, name: 'fake bedrock', onRequest: handle });
  return { url: srv.url, port: srv.port, stats, close: srv.close };
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const fake = await startFakeBedrock({ port: i > 0 ? Number(process.argv[i + 1]) : 8903 });
  console.log(`fake Bedrock listening on ${fake.url}`);
}
