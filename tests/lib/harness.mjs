// Test harness for driving the real `tollgate` binary over real HTTP.
//
//   const tg = await startTollgate({ config: yamlString });
//   const r = await request(tg.url + '/v1/models', { headers: auth() });
//   …
//   const code = await tg.stop();            // SIGTERM, waits for exit
//
// The binary is TOLLGATE_BIN (relative paths are taken from the repository root), by default
// build-asan/tollgate. Every process started here is killed when the test process exits, also
// when a test fails or the runner interrupts it.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MASTER_KEY = 'sk-test-master';
export const UPSTREAM_KEY = 'fake-key';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tollgateBin() {
  const p = process.env.TOLLGATE_BIN || 'build-asan/tollgate';
  return path.isAbsolute(p) ? p : path.join(REPO_ROOT, p);
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: nothing we start survives us.

const live = new Set(); // ChildProcess
const tempDirs = new Set();

function killAllSync() {
  for (const p of live) {
    try {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
  if (!process.env.TOLLGATE_KEEP_TMP) {
    for (const d of tempDirs) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
      } catch {
        /* ignore */
      }
    }
  }
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllSync();
    process.exit(128 + (os.constants.signals[sig] || 0));
  });
}

/** Kills every process this harness started (SIGKILL). Safe to call more than once. */
export function killAll() {
  killAllSync();
}

// ---------------------------------------------------------------------------------------------

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A port where nothing listens (for "upstream unreachable" tests). */
export async function closedPort() {
  return freePort();
}

export function makeTempDir(prefix = 'tollgate-test-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/**
 * Writes `config` (YAML text) to a temp file, starts the binary on a free port and waits until
 * GET /health/liveliness answers 200.
 *
 * options: config (YAML string, required), env (extra environment), args (extra CLI args placed
 * after the standard ones), workers (default 2), port (default: a free one), readyTimeoutMs
 * (default 10000), bin (default tollgateBin()).
 *
 * Returns { url, port, proc, dir, configPath, logs(), stdout(), stderr(), stop(signal),
 *           waitExit(ms), sanitizerReport(), alive() }.
 */
/**
 * A new, empty PostgreSQL database on the server of base (default TEST_DATABASE_URL), named after
 * tag, this process and the time; returns its URL, or null when there is no base.
 */
export function freshPgDatabase(tag, base = process.env.TEST_DATABASE_URL) {
  if (!base) return null;
  const name = `tg_${tag}_${process.pid}_${Date.now()}`;
  const r = spawnSync('psql', [base, '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`CREATE DATABASE failed: ${r.stderr || r.error}`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Redis database number db on the server of base (default TEST_REDIS_URL), flushed; its URL. */
export function freshRedisDb(db, base = process.env.TEST_REDIS_URL) {
  const u = new URL(base);
  u.pathname = `/${db}`;
  const url = u.toString();
  const r = spawnSync('redis-cli', ['-u', url, 'FLUSHDB'], { encoding: 'utf8' });
  if (r.status !== 0 || !/OK/.test(r.stdout)) throw new Error(`redis FLUSHDB failed: ${r.stderr || r.stdout}`);
  return url;
}

export async function startTollgate({
  config,
  env = {},
  args = [],
  workers = 2,
  port,
  readyTimeoutMs = 10000,
  bin = tollgateBin(),
} = {}) {
  if (typeof config !== 'string') throw new Error('startTollgate: config must be a YAML string');
  if (!fs.existsSync(bin)) {
    throw new Error(
      `tollgate binary not found at ${bin} (set TOLLGATE_BIN or build it: make build-asan/tollgate)`,
    );
  }
  const dir = makeTempDir();
  const configPath = path.join(dir, 'config.yaml');
  fs.writeFileSync(configPath, config);
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  port = port || (await freePort());

  const argv = ['--config', configPath, '--host', '127.0.0.1', '--port', String(port), '--workers', String(workers), ...args];
  const childEnv = {
    ...process.env,
    TOLLGATE_DATA_DIR: path.join(dir, 'data'),
    ...env,
  };
  // The gateway must not pick up an outer proxy for its loopback upstreams.
  for (const k of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'all_proxy']) {
    if (!(k in env)) delete childEnv[k];
  }
  // h2o's one-time allocations are suppressed by name (tests/lsan.supp) so that a sanitizer build
  // exits 0 after SIGTERM unless Tollgate itself leaked.
  if (!childEnv.LSAN_OPTIONS) {
    childEnv.LSAN_OPTIONS = `suppressions=${path.join(REPO_ROOT, 'tests', 'lsan.supp')}:print_suppressions=0`;
  }
  // PORT is read when --port is absent (Railway convention); make sure a stray one cannot interfere.
  if (!('PORT' in env)) delete childEnv.PORT;

  const proc = spawn(bin, argv, { cwd: dir, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  // Neither the child nor its pipes keep the test process alive: when the tests are over (or a
  // test failed without cleaning up) the process exits and the 'exit' hook kills the child.
  proc.unref();
  proc.stdout.unref?.();
  proc.stderr.unref?.();

  let stdoutBuf = '';
  let stderrBuf = '';
  const stdoutLines = [];
  let partial = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (s) => {
    stdoutBuf += s;
    partial += s;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      stdoutLines.push(partial.slice(0, i));
      partial = partial.slice(i + 1);
    }
  });
  proc.stderr.on('data', (s) => {
    stderrBuf += s;
    if (process.env.TOLLGATE_TEST_VERBOSE) process.stderr.write(`[tollgate:${port}] ${s}`);
  });

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    // 'close' (not 'exit'): it comes after the stdio pipes are drained, so stderr holds the
    // complete sanitizer report by then.
    proc.on('close', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      resolve(exitInfo);
    });
    proc.on('error', (err) => {
      exitInfo = { code: null, signal: null, error: err };
      live.delete(proc);
      resolve(exitInfo);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  let lastErr = null;
  for (;;) {
    if (exitInfo) {
      throw new Error(
        `tollgate exited before becoming ready (code ${exitInfo.code}, signal ${exitInfo.signal}` +
          `${exitInfo.error ? `, ${exitInfo.error.message}` : ''})\n--- stderr ---\n${stderrBuf}\n--- stdout ---\n${stdoutBuf}`,
      );
    }
    try {
      const r = await request(`${url}/health/liveliness`, { timeoutMs: 1000 });
      if (r.status === 200) break;
      lastErr = new Error(`status ${r.status}: ${r.text}`);
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(
        `tollgate did not answer GET /health/liveliness with 200 within ${readyTimeoutMs} ms ` +
          `(last: ${lastErr && lastErr.message})\n--- stderr ---\n${stderrBuf}\n--- stdout ---\n${stdoutBuf}`,
      );
    }
    await sleep(50);
  }

  function logs() {
    const out = [];
    for (const l of stdoutLines) {
      const t = l.trim();
      if (!t.startsWith('{')) continue;
      try {
        out.push(JSON.parse(t));
      } catch {
        /* not a JSON line */
      }
    }
    return out;
  }

  async function waitExit(ms = 15000) {
    let timer;
    const t = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r(null), ms)))]);
    clearTimeout(timer);
    return t;
  }

  /**
   * Sends `signal` and waits for the process to exit (up to timeoutMs, then SIGKILL).
   * Returns the exit code, or the signal name when it died of a signal.
   */
  async function stop(signal = 'SIGTERM', timeoutMs = 20000) {
    if (!exitInfo) {
      try {
        proc.kill(signal);
      } catch {
        /* gone */
      }
      const r = await waitExit(timeoutMs);
      if (!r) {
        proc.kill('SIGKILL');
        await exited;
        return 'SIGKILL (did not exit in time)';
      }
    }
    return exitInfo.code !== null ? exitInfo.code : exitInfo.signal;
  }

  /** Lines of stderr that report ASan/UBSan/LSan findings (empty array when clean). */
  function sanitizerReport() {
    return stderrBuf
      .split('\n')
      .filter((l) => /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/.test(l));
  }

  /**
   * A short digest of sanitizer output for assertion messages: ERROR/SUMMARY lines and the first
   * direct-leak stacks (indirect leaks follow from those), at most maxChars characters.
   */
  function sanitizerDigest(maxChars = 6000) {
    const blocks = stderrBuf.split(/\n\s*\n/);
    const keep = blocks.filter((b) => /ERROR: |runtime error:|SUMMARY: |^\s*Direct leak/m.test(b) && !/^\s*Indirect leak/.test(b));
    let out = keep.join('\n\n');
    if (out.length > maxChars) out = `${out.slice(0, maxChars)}\n… (${out.length - maxChars} more characters)`;
    return out || stderrBuf.slice(-maxChars);
  }

  return {
    url,
    port,
    proc,
    dir,
    configPath,
    logs,
    stdout: () => stdoutBuf,
    stdoutLines: () => [...stdoutLines],
    stderr: () => stderrBuf,
    exitInfo: () => exitInfo,
    exited,
    waitExit,
    stop,
    sanitizerReport,
    sanitizerDigest,
    alive: () => !exitInfo,
  };
}

/** Runs `tollgate <args…>` to completion (check-config, migrate): { code, stdout, stderr }. */
export function runTollgate(args, { env = {}, timeoutMs = 20000, bin = tollgateBin(), cwd } = {}) {
  const r = spawnSync(bin, args, {
    env: { ...process.env, ...env },
    cwd: cwd || makeTempDir(),
    timeout: timeoutMs,
    encoding: 'utf8',
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers (node:http, one fresh connection per request unless an agent is given, so
// nothing depends on keep-alive state between tests).

export function auth(key = MASTER_KEY) {
  return { authorization: `Bearer ${key}` };
}

/**
 * request(url, { method, headers, body, timeoutMs, agent, onResponse, onData, signal })
 * body: string | Buffer | object (JSON-encoded, content-type set).
 * Resolves { status, headers, rawHeaders, body (Buffer), text, json (or undefined), chunks
 * [{ t, data }], tStart, tHeaders, tEnd, complete, error }.
 * `complete` is false when the connection broke after the headers (the promise still resolves,
 * with `error` set); it rejects only when no response arrived at all.
 */
export function request(url, opts = {}) {
  const { method, headers = {}, body, timeoutMs = 30000, agent = false, onResponse, onData, signal } = opts;
  let payload = null;
  const hdrs = { ...headers };
  if (body !== undefined && body !== null) {
    if (Buffer.isBuffer(body) || typeof body === 'string') payload = Buffer.from(body);
    else {
      payload = Buffer.from(JSON.stringify(body));
      if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type')) hdrs['content-type'] = 'application/json';
    }
    hdrs['content-length'] = String(payload.length);
  }
  const m = method || (payload ? 'POST' : 'GET');
  return new Promise((resolve, reject) => {
    const tStart = Date.now();
    let settled = false;
    const req = http.request(url, { method: m, headers: hdrs, agent, signal }, (res) => {
      const tHeaders = Date.now();
      const chunks = [];
      let error = null;
      if (onResponse) onResponse(res, req);
      res.on('data', (d) => {
        chunks.push({ t: Date.now(), data: d });
        if (onData) onData(d, res, req);
      });
      const finish = (complete) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const buf = Buffer.concat(chunks.map((c) => c.data));
        const text = buf.toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({
          status: res.statusCode,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          httpVersion: res.httpVersion,
          body: buf,
          text,
          json,
          chunks,
          tStart,
          tHeaders,
          tEnd: Date.now(),
          complete,
          error,
        });
      };
      res.on('end', () => finish(res.complete));
      res.on('aborted', () => {
        error = error || new Error('response aborted');
      });
      res.on('error', (e) => {
        error = error || e;
      });
      res.on('close', () => finish(res.complete && !error));
    });
    const timer = setTimeout(() => {
      const e = new Error(`request ${m} ${url} timed out after ${timeoutMs} ms`);
      e.code = 'ETIMEDOUT_TEST';
      if (!settled) {
        settled = true;
        req.destroy(e);
        reject(e);
      }
    }, timeoutMs);
    req.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    });
    if (payload) req.end(payload);
    else req.end();
  });
}

/** POST a JSON body with the master key. */
export function postJSON(url, body, { key = MASTER_KEY, headers = {}, ...rest } = {}) {
  const h = key === null ? { ...headers } : { ...auth(key), ...headers };
  return request(url, { method: 'POST', body, headers: h, ...rest });
}

/** GET with the master key (key: null for none). */
export function getJSON(url, { key = MASTER_KEY, headers = {}, ...rest } = {}) {
  const h = key === null ? { ...headers } : { ...auth(key), ...headers };
  return request(url, { method: 'GET', headers: h, ...rest });
}

/**
 * Raw SSE bytes of a streamed request plus timing: the same as request() (body is the raw bytes
 * exactly as received), with `events` parsed, and `abortAfterFirstChunk` to hang up as soon as
 * the first data byte arrives (the promise then resolves with what was read).
 */
export async function readSSE(url, { body, headers = {}, key = MASTER_KEY, timeoutMs = 30000, abortAfter, agent } = {}) {
  const h = key === null ? { ...headers } : { ...auth(key), ...headers };
  let aborted = false;
  const r = await request(url, {
    method: 'POST',
    body,
    headers: h,
    timeoutMs,
    agent,
    onData: (d, res, req) => {
      if (abortAfter && !aborted && abortAfter(d, res)) {
        aborted = true;
        res.destroy();
        req.destroy();
      }
    },
  });
  r.events = sseEvents(r.text);
  r.clientAborted = aborted;
  return r;
}

// ---------------------------------------------------------------------------------------------
// SSE parsing (WHATWG HTML §9.2: CRLF/LF/CR line ends, `:` comments, `field: value` with one
// optional space, events dispatched at a blank line; an unterminated last block is NOT an event).

/**
 * Parses an SSE body into events: [{ event, data, id, raw, json }] where `json` is the parsed
 * data (undefined when not JSON, e.g. [DONE]). `parseSSE.incomplete` on the returned array tells
 * whether trailing bytes did not form a complete event.
 */
export function sseEvents(text) {
  if (Buffer.isBuffer(text)) text = text.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const events = [];
  let data = [];
  let event = '';
  let id = null;
  let hasData = false;
  let rawStart = 0;
  let pos = 0;
  const re = /\r\n|\r|\n/g;
  let m;
  let trailing = '';
  for (;;) {
    m = re.exec(text);
    if (!m) {
      trailing = text.slice(pos);
      break;
    }
    const line = text.slice(pos, m.index);
    pos = m.index + m[0].length;
    if (line === '') {
      if (hasData) {
        const d = data.join('\n');
        let json;
        try {
          json = JSON.parse(d);
        } catch {
          json = undefined;
        }
        events.push({ event: event || 'message', data: d, id, raw: text.slice(rawStart, pos), json });
      }
      data = [];
      event = '';
      hasData = false;
      rawStart = pos;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    if (field === 'data') {
      data.push(value);
      hasData = true;
    } else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  }
  Object.defineProperty(events, 'incomplete', { value: trailing.trim() !== '' || hasData, enumerable: false });
  return events;
}

/** Data payloads of JSON events (skips [DONE] and non-JSON). */
export function sseJson(text) {
  return sseEvents(text).filter((e) => e.json !== undefined).map((e) => e.json);
}

/** Concatenated `choices[0].delta.content` of a chat stream. */
export function streamText(text) {
  let out = '';
  for (const c of sseJson(text)) {
    const ch = c.choices && c.choices[0];
    if (ch && ch.delta && typeof ch.delta.content === 'string') out += ch.delta.content;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Config helpers

/** Block-style YAML for plain data (objects, arrays, strings, numbers, booleans, null). */
export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  const scalar = (v) => (v === null || v === undefined ? 'null' : JSON.stringify(v));
  const isColl = (v) => v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}[]\n`;
    let out = '';
    for (const v of value) {
      if (isColl(v) && !Array.isArray(v)) {
        const inner = toYaml(v, indent + 2);
        out += `${pad}- ${inner.slice(indent + 2)}`;
      } else if (isColl(v)) {
        out += `${pad}-\n${toYaml(v, indent + 2)}`;
      } else {
        out += `${pad}- ${Array.isArray(v) ? '[]' : typeof v === 'object' && v !== null ? '{}' : scalar(v)}\n`;
      }
    }
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return `${pad}{}\n`;
    let out = '';
    for (const k of keys) {
      const v = value[k];
      const key = /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k) ? k : JSON.stringify(k);
      if (isColl(v)) out += `${pad}${key}:\n${toYaml(v, indent + 2)}`;
      else out += `${pad}${key}: ${Array.isArray(v) ? '[]' : typeof v === 'object' && v !== null ? '{}' : scalar(v)}\n`;
    }
    return out;
  }
  return `${pad}${scalar(value)}\n`;
}

/** The model_name → fake mode map every gateway config gets by default. */
export const DEFAULT_MODELS = {
  'gpt-test': 'ok',
  'gpt-tools': 'tools',
  'gpt-slow': 'slow',
  'gpt-hang': 'hang',
  'gpt-fail500': 'fail500',
  'gpt-fail429': 'fail429',
  'gpt-fail400': 'fail400',
  'gpt-html502': 'html502',
  'gpt-truncate': 'truncate',
  'gpt-midstream-error': 'midstream-error',
  'gpt-many': 'many',
  'text-embedding-test': 'ok',
};

/**
 * Config (as a plain object) with one deployment per fake mode (see DEFAULT_MODELS; `gpt-hang`
 * has `timeout: 1`), a `mock` deployment (mock/mock-1), the master key, and
 * tollgate_settings.max_request_body 65536.
 */
export function gatewayConfigObject({
  upstreamUrl,
  models = {},
  extraModels = [],
  settings = {},
  general = {},
  masterKey = MASTER_KEY,
  includeDefaults = true,
  extra = {},
} = {}) {
  const list = [];
  if (includeDefaults) {
    for (const [name, mode] of Object.entries({ ...DEFAULT_MODELS, ...models })) {
      const p = { model: `openai/${mode}`, api_base: upstreamUrl, api_key: UPSTREAM_KEY };
      if (mode === 'hang') p.timeout = 1;
      list.push({ model_name: name, litellm_params: p });
    }
    list.push({ model_name: 'mock', litellm_params: { model: 'mock/mock-1' } });
  }
  list.push(...extraModels);
  return {
    model_list: list,
    general_settings: { master_key: masterKey, ...general },
    tollgate_settings: { max_request_body: 65536, ...settings },
    ...extra,
  };
}

/** The same as YAML text. */
export function gatewayConfig(opts = {}) {
  return toYaml(gatewayConfigObject(opts));
}

/** Configured public model names of a config object, in order, without duplicates. */
export function modelNames(cfgObj) {
  return [...new Set(cfgObj.model_list.map((m) => m.model_name))];
}

/** Asserts-free check that an object has the OpenAI error shape; returns a reason or null. */
export function openAIErrorShapeProblem(json) {
  if (!json || typeof json !== 'object') return 'body is not a JSON object';
  const e = json.error;
  if (!e || typeof e !== 'object') return 'no "error" object';
  for (const k of ['message', 'type', 'param', 'code']) {
    if (!(k in e)) return `error.${k} missing`;
  }
  if (typeof e.message !== 'string' || e.message === '') return 'error.message not a non-empty string';
  return null;
}

/** Polls an async/sync predicate until truthy or the deadline passes. */
export async function waitUntil(pred, ms = 2000, what = 'condition', step = 10) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(step);
  }
}

/** Resolves true when a TCP connect to host:port is refused, false when it connects. */
export function connectRefused(port, host = '127.0.0.1', timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(false);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      resolve(e.code === 'ECONNREFUSED');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// A fake upstream plus a gateway configured for it: the usual set-up of one test file.

/**
 * Starts the fake OpenAI upstream and a tollgate whose config has one deployment per fake mode.
 * opts: models, extraModels (may be a function of the fake: fake => [...]), settings, general,
 * extra, env, args, workers. Returns { fake, tg, url, v1, cfg, close() }.
 */
export async function startStack(opts = {}) {
  const { startFakeOpenAI } = await import('../fakes/openai-upstream.mjs');
  const fake = await startFakeOpenAI({ port: 0 });
  const extraModels = typeof opts.extraModels === 'function' ? await opts.extraModels(fake) : opts.extraModels || [];
  const cfg = gatewayConfigObject({ ...opts, extraModels, upstreamUrl: fake.url });
  let tg;
  try {
    tg = await startTollgate({ config: toYaml(cfg), env: opts.env, args: opts.args, workers: opts.workers });
  } catch (e) {
    await fake.close();
    throw e;
  }
  return {
    fake,
    tg,
    cfg,
    url: tg.url,
    v1: `${tg.url}/v1`,
    async close() {
      if (tg.alive()) await tg.stop('SIGKILL', 5000);
      await fake.close();
    },
  };
}

/**
 * The end of every gateway test file: the process is still healthy, exits 0 on SIGTERM (which
 * under ASan includes the leak check), reported no sanitizer finding, and never printed a secret.
 */
export async function assertHealthyThenCleanExit(tg, assert, secrets = [MASTER_KEY, UPSTREAM_KEY]) {
  assert.equal(tg.alive(), true, `tollgate died: ${JSON.stringify(tg.exitInfo())}\n${tg.stderr()}`);
  const h = await request(`${tg.url}/health/liveliness`, { timeoutMs: 5000 });
  assert.equal(h.status, 200);
  const code = await tg.stop('SIGTERM');
  assert.deepEqual(tg.sanitizerReport(), [], `sanitizer findings (exit code ${code}):\n${tg.sanitizerDigest()}`);
  assert.equal(code, 0, `exit code ${code} after SIGTERM; stderr tail:\n${tg.stderr().slice(-6000)}`);
  const all = tg.stdout() + tg.stderr();
  for (const s of secrets) {
    const i = all.indexOf(s);
    assert.equal(i, -1, `secret ${JSON.stringify(s)} appears in tollgate output: …${all.slice(Math.max(0, i - 200), i + 100)}…`);
  }
}
