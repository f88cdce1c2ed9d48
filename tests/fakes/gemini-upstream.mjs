// A fake Google Gemini API (AI Studio) upstream for Tollgate's e2e tests.
//
// It speaks Gemini's wire format (shared/providers.md §4): POST
// /v1beta/models/{model}:generateContent (pretty-printed JSON, as Google sends it),
// :streamGenerateContent?alt=sse (data-only SSE framed with CRLF, every event a whole
// GenerateContentResponse with cumulative usageMetadata, no terminal event, the body just ends;
// without alt=sse the stream is one JSON array, as Google does), :batchEmbedContents, the key in
// x-goog-api-key, and Google's error envelope {"error":{"code","message","status","details"}}
// (a bad key is 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as Gemini answers it).
//
// Behaviour is chosen by the model in the URL (a gateway deployment `gemini/gemini-tools` arrives
// here as /v1beta/models/gemini-tools:…):
//   gemini-ok               "Hello from fake Gemini." (stream: 3 text events, the last with STOP)
//   gemini-tools            calls the first declared function with {"city":"Paris"} (the part
//                           carries a thoughtSignature, as Gemini 2.5+ does); after a
//                           functionResponse answers "Tool said: <response JSON>"
//   gemini-fail429          429 RESOURCE_EXHAUSTED with RetryInfo retryDelay 7s
//   gemini-fail400          400 INVALID_ARGUMENT, input token count over the limit
//   gemini-fail503          503 UNAVAILABLE (overloaded)
//   gemini-midstream-error  stream: one text event, then {"error":{…}} inside the 200 stream
//   gemini-truncate         stream: one text event, then the socket is destroyed
//   gemini-blocked          promptFeedback.blockReason SAFETY, no candidates
//   gemini-embedding-001    batchEmbedContents: deterministic vectors (outputDimensionality, default 8)
//   anything else           404 NOT_FOUND
// Token counts: promptTokenCount = ceil(characters of all text parts incl. systemInstruction / 4);
// candidatesTokenCount = number of streamed pieces (3 for ok); thoughtsTokenCount = 2.
//
// Library use:  const fake = await startFakeGemini();  … fake.requests …  await fake.close();

import { parseJson, startFakeServer } from './common.mjs';

export const FAKE_GEMINI_KEY = 'fake-gemini-key';
export const GEMINI_REPLY = 'Hello from fake Gemini.';
export const GEMINI_REPLY_PIECES = ['Hello', ' from fake', ' Gemini.'];
export const GEMINI_THOUGHTS = 2;
export const GEMINI_SIGNATURE = 'CiQBcsjafGZha2Utc2lnbmF0dXJl';
export const GEMINI_TOOL_ARGS = { city: 'Paris' };
export const GEMINI_EMBED_DIMS = 8;
export const GEMINI_MODEL_VERSION = 'gemini-2.5-flash-fake';

/** Characters of the text parts of a generateContent body (systemInstruction included). */
export function promptChars(body) {
  let n = 0;
  const parts = [...(body.systemInstruction?.parts || [])];
  for (const c of body.contents || []) parts.push(...(c.parts || []));
  for (const p of parts) if (typeof p.text === 'string') n += p.text.length;
  return n;
}

export function geminiPromptTokens(body) {
  return Math.ceil(promptChars(body) / 4);
}

/** Deterministic vector values exactly representable as float32, so float and base64 agree. */
export function geminiEmbedding(text, dims = GEMINI_EMBED_DIMS) {
  const v = [];
  for (let i = 0; i < dims; i++) {
    let h = 0x811c9dc5;
    for (const b of Buffer.from(`${i}:${text}`)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    v.push(((h & 0xffff) - 32768) / 32768);
  }
  return v;
}

function googleError(code, status, message, details) {
  const error = { code, message, status };
  if (details) error.details = details;
  return { error };
}

export const GEMINI_ERRORS = {
  badKey: googleError(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [
    { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' },
  ]),
  fail429: googleError(429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details.', [
    { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '7s' },
  ]),
  fail400: googleError(400, 'INVALID_ARGUMENT', 'The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).'),
  fail503: googleError(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'),
  midstream: googleError(500, 'INTERNAL', 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting'),
};

const pretty = (obj) => `${JSON.stringify(obj, null, 2)}\n`;
// Google's style inside SSE data lines: one line, a space after each key's colon, none after commas.
function googleJson(v) {
  if (Array.isArray(v)) return `[${v.map(googleJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const members = Object.entries(v).filter(([, x]) => x !== undefined);
    return `{${members.map(([k, x]) => `${JSON.stringify(k)}: ${googleJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
const sseLine = (obj) => `data: ${googleJson(obj)}\r\n\r\n`;

function usage(prompt, candidates) {
  const u = { promptTokenCount: prompt, totalTokenCount: prompt + candidates + GEMINI_THOUGHTS };
  if (candidates > 0) u.candidatesTokenCount = candidates;
  u.promptTokensDetails = [{ modality: 'TEXT', tokenCount: prompt }];
  u.thoughtsTokenCount = GEMINI_THOUGHTS;
  return u;
}

let responseSeq = 0;

function response(candidates, usageMetadata) {
  const r = { candidates, usageMetadata, modelVersion: GEMINI_MODEL_VERSION, responseId: `fake-resp-${++responseSeq}` };
  if (!candidates) delete r.candidates;
  return r;
}

function textCandidate(text, finishReason) {
  const c = { content: { parts: [{ text }], role: 'model' }, index: 0 };
  if (finishReason) c.finishReason = finishReason;
  return c;
}

/** The answer of gemini-tools: a call, or the tool's result echoed once one is present. */
function toolsAnswer(body) {
  const last = (body.contents || [])[body.contents.length - 1];
  const fr = (last?.parts || []).find((p) => p.functionResponse);
  if (fr) return { text: `Tool said: ${JSON.stringify(fr.functionResponse.response)}` };
  const fn = body.tools?.[0]?.functionDeclarations?.[0]?.name || 'unknown_tool';
  return { call: { functionCall: { name: fn, args: GEMINI_TOOL_ARGS }, thoughtSignature: GEMINI_SIGNATURE } };
}

function send(res, rec, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : pretty(body);
  rec.status = status;
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
  res.end(text);
}

async function generate(res, rec, model, body) {
  const prompt = geminiPromptTokens(body);
  if (model === 'gemini-blocked') {
    return send(res, rec, 200, { promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: usage(prompt, 0), modelVersion: GEMINI_MODEL_VERSION });
  }
  if (model === 'gemini-tools') {
    const a = toolsAnswer(body);
    const parts = a.call ? [a.call] : [{ text: a.text }];
    return send(res, rec, 200, response([{ content: { parts, role: 'model' }, finishReason: 'STOP', index: 0 }], usage(prompt, 5)));
  }
  return send(res, rec, 200, response([textCandidate(GEMINI_REPLY, 'STOP')], usage(prompt, GEMINI_REPLY_PIECES.length)));
}

function streamEvents(model, body) {
  const prompt = geminiPromptTokens(body);
  const id = `fake-resp-${++responseSeq}`;
  const ev = (cands, u) => ({ candidates: cands, usageMetadata: u, modelVersion: GEMINI_MODEL_VERSION, responseId: id });
  if (model === 'gemini-tools') {
    const a = toolsAnswer(body);
    if (a.call) {
      return [ev([{ content: { parts: [a.call], role: 'model' }, finishReason: 'STOP', index: 0, finishMessage: 'Model generated function call(s).' }], usage(prompt, 5))];
    }
    const half = Math.ceil(a.text.length / 2);
    return [ev([textCandidate(a.text.slice(0, half))], usage(prompt, 1)), ev([textCandidate(a.text.slice(half), 'STOP')], usage(prompt, 2))];
  }
  return GEMINI_REPLY_PIECES.map((piece, i) =>
    ev([textCandidate(piece, i === GEMINI_REPLY_PIECES.length - 1 ? 'STOP' : undefined)], usage(prompt, i + 1)),
  );
}

async function stream(res, rec, model, body, alt) {
  const events = streamEvents(model, body);
  rec.status = 200;
  if (alt !== 'sse') { // Gemini's default: one JSON array streamed out
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
    return res.end(pretty(events));
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'x-content-type-options': 'nosniff' });
  for (const [i, e] of events.entries()) {
    res.write(sseLine(e));
    await new Promise((r) => setTimeout(r, 5));
    if (i === 0 && model === 'gemini-midstream-error') return res.end(sseLine(GEMINI_ERRORS.midstream));
    if (i === 0 && model === 'gemini-truncate') {
      rec.selfDestroyed = true;
      return res.destroy();
    }
  }
  res.end();
}

function embed(res, rec, body) {
  const reqs = Array.isArray(body.requests) ? body.requests : [];
  if (reqs.length === 0) return send(res, rec, 400, googleError(400, 'INVALID_ARGUMENT', '* BatchEmbedContentsRequest.requests: must not be empty\n'));
  const embeddings = reqs.map((r) => ({
    values: geminiEmbedding(r.content?.parts?.map((p) => p.text).join('') || '', r.outputDimensionality || GEMINI_EMBED_DIMS),
  }));
  return send(res, rec, 200, { embeddings });
}

async function handle(req, res, rec) {
  const url = new URL(req.url, 'http://fake');
  const m = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|batchEmbedContents)$/.exec(url.pathname);
  if (req.method !== 'POST' || !m) {
    return send(res, rec, 404, googleError(404, 'NOT_FOUND', `Invalid URL (${req.method} ${url.pathname})`));
  }
  const [, model, method] = m;
  rec.model = model;
  rec.method = method;
  rec.alt = url.searchParams.get('alt');
  if (req.headers['x-goog-api-key'] !== FAKE_GEMINI_KEY) return send(res, rec, 400, GEMINI_ERRORS.badKey);
  if (!rec.body || typeof rec.body !== 'object') {
    return send(res, rec, 400, googleError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
  }
  if (model === 'gemini-fail429') return send(res, rec, 429, GEMINI_ERRORS.fail429);
  if (model === 'gemini-fail400') return send(res, rec, 400, GEMINI_ERRORS.fail400);
  if (model === 'gemini-fail503') return send(res, rec, 503, GEMINI_ERRORS.fail503);
  const known = ['gemini-ok', 'gemini-tools', 'gemini-midstream-error', 'gemini-truncate', 'gemini-blocked', 'gemini-embedding-001'];
  if (!known.includes(model)) {
    return send(res, rec, 404, googleError(404, 'NOT_FOUND', `models/${model} is not found for API version v1beta, or is not supported for generateContent.`));
  }
  if (method === 'batchEmbedContents') return embed(res, rec, rec.body);
  if (!Array.isArray(rec.body.contents) || rec.body.contents.length === 0) {
    return send(res, rec, 400, googleError(400, 'INVALID_ARGUMENT', '* GenerateContentRequest.contents: contents is not specified\n'));
  }
  if (method === 'streamGenerateContent') return stream(res, rec, model, rec.body, rec.alt);
  return generate(res, rec, model, rec.body);
}

/** Starts the fake on 127.0.0.1. Returns { url, port, requests, last(), close() }. */
export async function startFakeGemini({ port = 0 } = {}) {
  const requests = [];
  function onRequest(req, res, bytes) {
    // a body that is not JSON stays null: handled as INVALID_ARGUMENT
    const rec = { path: req.url, headers: { ...req.headers }, raw: bytes.toString('utf8'), body: parseJson(bytes), status: null, selfDestroyed: false };
    requests.push(rec);
    return handle(req, res, rec);
  }
  const srv = await startFakeServer({ port, unref: true, name: 'fake gemini', onRequest });
  return { url: srv.url, port: srv.port, requests, last: () => requests[requests.length - 1], close: srv.close };
}
