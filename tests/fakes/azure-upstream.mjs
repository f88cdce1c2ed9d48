// A fake Azure OpenAI resource for Tollgate's e2e tests (shared/providers.md §2).
//
//   POST /openai/deployments/{deployment}/chat/completions?api-version=…   (dated API)
//   POST /openai/deployments/{deployment}/embeddings?api-version=…
//   POST /openai/v1/chat/completions                                      (v1 API: model = deployment)
//   auth: `api-key: <AZURE_FAKE_KEY>`; anything else → 401 in Azure's envelope.
//
// It answers in Azure's dialect of OpenAI's format: chat.completion with prompt_filter_results and
// per-choice content_filter_results; streams that open with the prompt-filter chunk (empty id and
// model, choices []), carry content_filter_results on every choice and a choice WITHOUT delta
// (content_filter_offsets only) before the finish, a usage chunk only when
// stream_options.include_usage is true, then [DONE]. Dated api-versions before 2024-09-01 reject
// stream_options with 400, as Azure does. Deployments:
//   gpt-4o-prod        "Hello from fake Azure." (stream: 4 content chunks)
//   gpt-4o-tools       tool call to the first tool with {"city":"Paris"} (arguments in 3 deltas);
//                      after a tool message: "Tool said: <content>"
//   throttled          429, Retry-After: 2, {"error":{"code":"429",…}}
//   filtered           400 prompt filter: code content_filter, innererror ResponsibleAIPolicyViolation
//   midstream-error    one chunk, then data: {"error":…}
//   text-embedding-3-small   embeddings (float, or base64 when asked)
//   anything else      404 DeploymentNotFound
// Token counts: prompt_tokens = ceil(characters of message contents / 4); completion_tokens = 5.
//
// Library use:  const fake = await startFakeAzure();  … fake.requests …  await fake.close();

import { sleep, isMain, floatsToBase64, stringContentTokens, parseJson, startFakeServer } from './common.mjs';

export const AZURE_FAKE_KEY = 'azure-fake-key';
export const AZURE_REPLY_PIECES = ['Hello', ' from', ' fake', ' Azure.'];
export const AZURE_REPLY = AZURE_REPLY_PIECES.join('');
export const AZURE_TOOL_ARG_PIECES = ['{"ci', 'ty":"Pa', 'ris"}'];
export const AZURE_TOOL_CALL_ID = 'call_AzF4k3';
export const AZURE_EMBED_DIMS = 8;
export const AZURE_MIDSTREAM_ERROR = 'The server had an error processing your request.';

const SAFE = { filtered: false, severity: 'safe' };
const CFR = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const PROMPT_FILTER = [{ prompt_index: 0, content_filter_results: { ...CFR, jailbreak: { filtered: false, detected: false } } }];

/** Prompt tokens the fake reports: ceil(characters of string contents / 4). */
export const promptTokens = stringContentTokens;

/** 8 values exactly representable as float32. */
export function azureEmbedding(text) {
  const v = [];
  let h = 0x9e3779b9;
  for (const b of Buffer.from(text, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  for (let i = 0; i < AZURE_EMBED_DIMS; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    v.push(((h & 0xffff) - 32768) / 32768);
  }
  return v;
}

function azureError(code, message, extra = {}) {
  return { error: { code, message, ...extra } };
}

/** { deployment, op, v1, apiVersion } for a request path, or null. */
function route(url) {
  const u = new URL(url, 'http://fake');
  const v = u.searchParams.get('api-version');
  let m = u.pathname.match(/^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/);
  if (m) return { deployment: decodeURIComponent(m[1]), op: m[2], v1: false, apiVersion: v };
  m = u.pathname.match(/^\/openai\/v1\/(chat\/completions|embeddings)$/);
  if (m) return { deployment: null, op: m[1], v1: true, apiVersion: v };
  return null;
}

function plan(body) {
  const last = body.messages[body.messages.length - 1];
  if (last && last.role === 'tool') return { pieces: ['Tool said: ', String(last.content)], tool: null };
  if (body.__deployment === 'gpt-4o-tools') {
    const name = (body.tools && body.tools[0] && body.tools[0].function.name) || 'tool';
    return { pieces: [], tool: name };
  }
  return { pieces: AZURE_REPLY_PIECES, tool: null };
}

function usageOf(body) {
  const p = promptTokens(body.messages);
  return {
    completion_tokens: 5,
    completion_tokens_details: { accepted_prediction_tokens: 0, audio_tokens: 0, reasoning_tokens: 0, rejected_prediction_tokens: 0 },
    prompt_tokens: p,
    prompt_tokens_details: { audio_tokens: 0, cached_tokens: 0 },
    total_tokens: p + 5,
  };
}

function completion(body, p) {
  const message = { annotations: [], content: p.tool ? null : p.pieces.join(''), refusal: null, role: 'assistant' };
  if (p.tool)
    message.tool_calls = [{ function: { arguments: AZURE_TOOL_ARG_PIECES.join(''), name: p.tool }, id: AZURE_TOOL_CALL_ID, type: 'function' }];
  return {
    choices: [{ content_filter_results: p.tool ? {} : CFR, finish_reason: p.tool ? 'tool_calls' : 'stop', index: 0, logprobs: null, message }],
    created: 1733000000,
    id: 'chatcmpl-AzFake1',
    model: 'gpt-4o-2024-11-20',
    object: 'chat.completion',
    prompt_filter_results: PROMPT_FILTER,
    system_fingerprint: 'fp_b705f0c291',
    usage: usageOf(body),
  };
}

function streamEvents(body, p) {
  const head = { created: 1733000000, id: 'chatcmpl-AzFake2', model: 'gpt-4o-2024-11-20', object: 'chat.completion.chunk', system_fingerprint: 'fp_b705f0c291' };
  const chunk = (choice) => ({ choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }], ...head, usage: null });
  const ev = [{ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: PROMPT_FILTER }];
  ev.push(chunk({ content_filter_results: {}, delta: { content: p.tool ? null : '', refusal: null, role: 'assistant' } }));
  for (const piece of p.pieces) ev.push(chunk({ content_filter_results: CFR, delta: { content: piece } }));
  if (p.tool) {
    ev.push(chunk({ content_filter_results: {}, delta: { tool_calls: [{ function: { arguments: '', name: p.tool }, id: AZURE_TOOL_CALL_ID, index: 0, type: 'function' }] } }));
    for (const a of AZURE_TOOL_ARG_PIECES) ev.push(chunk({ content_filter_results: {}, delta: { tool_calls: [{ function: { arguments: a }, index: 0 }] } }));
  } else {
    // the asynchronous filter's verdict: a choice with no delta at all
    ev.push({ choices: [{ content_filter_offsets: { check_offset: 0, start_offset: 0, end_offset: 22 }, content_filter_results: CFR, finish_reason: null, index: 0 }], ...head });
  }
  ev.push(chunk({ content_filter_results: {}, delta: {}, finish_reason: p.tool ? 'tool_calls' : 'stop' }));
  if (body.stream_options && body.stream_options.include_usage === true) ev.push({ choices: [], ...head, usage: usageOf(body) });
  return ev;
}

export async function startFakeAzure({ port = 0, host = '127.0.0.1' } = {}) {
  const requests = [];

  async function chat(r, body, res, send) {
    if (!r.v1 && r.apiVersion < '2024-09-01' && 'stream_options' in body)
      return send(400, { error: { message: 'Unrecognized request argument supplied: stream_options', type: 'invalid_request_error', param: null, code: null } });
    const dep = r.v1 ? body.model : r.deployment;
    if (dep === 'throttled') {
      return send(429, azureError('429', `Requests to the ChatCompletions_Create Operation under Azure OpenAI API version ${r.apiVersion} have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 2 seconds.`), { 'retry-after': '2' });
    }
    if (dep === 'filtered') {
      return send(400, {
        error: {
          message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
          type: null, param: 'prompt', code: 'content_filter', status: 400,
          innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { ...CFR, violence: { filtered: true, severity: 'medium' } } },
        },
      });
    }
    if (!['gpt-4o-prod', 'gpt-4o-tools', 'midstream-error'].includes(dep))
      return send(404, azureError('DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.'));
    const p = plan({ ...body, __deployment: dep });
    if (body.stream !== true) return send(200, completion(body, p));
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'apim-request-id': 'fake' });
    let events = streamEvents(body, p);
    if (dep === 'midstream-error') events = [...events.slice(0, 3), { error: { code: 'server_error', message: AZURE_MIDSTREAM_ERROR, param: null, type: null } }];
    for (const e of events) {
      res.write(`data: ${JSON.stringify(e)}\n\n`);
      await sleep(2);
    }
    if (dep !== 'midstream-error') res.write('data: [DONE]\n\n');
    res.end();
  }

  function embeddings(r, body, send) {
    if (r.deployment !== 'text-embedding-3-small') return send(404, azureError('DeploymentNotFound', 'The API deployment for this resource does not exist.'));
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    const b64 = body.encoding_format === 'base64';
    let chars = 0;
    for (const s of inputs) chars += String(s).length;
    const pt = Math.ceil(chars / 4);
    return send(200, {
      data: inputs.map((s, i) => ({ embedding: b64 ? floatsToBase64(azureEmbedding(String(s))) : azureEmbedding(String(s)), index: i, object: 'embedding' })),
      model: 'text-embedding-3-small',
      object: 'list',
      usage: { prompt_tokens: pt, total_tokens: pt },
    });
  }

  function onRequest(req, res, bytes) {
    const raw = bytes.toString('utf8');
    const body = parseJson(bytes);
    const r = route(req.url);
    const rec = { method: req.method, path: req.url, headers: { ...req.headers }, body, raw, route: r };
    requests.push(rec);
    const send = (status, obj, headers = {}) => {
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(obj));
    };
    if (req.headers['api-key'] !== AZURE_FAKE_KEY)
      return send(401, azureError('401', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.'));
    if (!r || req.method !== 'POST') return send(404, azureError('404', 'Resource not found'));
    if (!r.v1 && !r.apiVersion) return send(404, azureError('404', 'Resource not found'));
    if (body === null || typeof body !== 'object') return send(400, { error: { message: "We could not parse the JSON body of your request.", type: 'invalid_request_error', param: null, code: null } });
    return r.op === 'embeddings' ? embeddings(r, body, send) : chat(r, body, res, send);
  }

  const srv = await startFakeServer({ port, host, name: 'fake azure', onRequest });
  return { url: srv.url, requests, last: () => requests[requests.length - 1], close: srv.close };
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const fake = await startFakeAzure({ port: i > 0 ? Number(process.argv[i + 1]) : 8910 });
  console.log(`fake Azure OpenAI on ${fake.url}`);
}
