// Exactness and durability of limits, budgets and spend, through REAL Tollgate binaries sharing a
// REAL PostgreSQL and Redis (make test exports TEST_DATABASE_URL and TEST_REDIS_URL; without them
// this file skips). The issue's "tests that must exist":
//   1. 200 parallel requests against a key whose budget is worth 50 requests, through 3 instances:
//      the budget holds (overshoot at most one request's estimate error), every admitted request
//      is billed exactly once.
//   2. a burst of 20 parallel requests against rpm_limit 5 across 3 instances admits exactly 5;
//      the others are 429 rate_limit_exceeded with retry-after and x-ratelimit-* headers.
//   3. kill -9 of one instance while 200 requests run, then a restart with the same instance id
//      and data dir: every response the victim completed is in its journal, the restart replays
//      what the store did not have yet, spend rows equal the 200 responses the client received,
//      none twice, and their total equals the x-litellm-response-cost headers. (A request in
//      flight at the victim may be journaled and lose its response to the kill: billed for work
//      done. The test allows at most the number of requests in flight there, and logs it.)
//   4. PostgreSQL stopped for 30 s under load (a second throwaway server, scripts/pgtmp.sh):
//      requests with a cached key keep succeeding to its end (past the key cache's 30 s
//      freshness); their spend arrives after it returns, once.
//   5. a budget with budget_duration "2s" refuses past its amount and admits again after reset.
// Plus: a client-chosen x-request-id cannot merge the billing of two requests, and the instances
// exit cleanly (sanitizers, leak check) without a key in their output.
//
// Every request's cost is known exactly: the mock deployment has fixed per-token prices, its
// usage is prompt_tokens = ceil(content chars / 4), completion_tokens = 16 (the default reply's
// pieces), and the request sends max_tokens 16, so the admission estimate
// ceil(body bytes / 4) × input price + max_tokens × output price is known too.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startTollgate,
  request,
  postJSON,
  getJSON,
  sleep,
  makeTempDir,
  MASTER_KEY,
  REPO_ROOT,
  assertHealthyThenCleanExit,
  openAIErrorShapeProblem,
  freshPgDatabase,
  freshRedisDb,
} from '../lib/harness.mjs';

const DB_BASE = process.env.TEST_DATABASE_URL;
const REDIS_BASE = process.env.TEST_REDIS_URL;
const SKIP = !DB_BASE
  ? 'TEST_DATABASE_URL is not set (make test sets it)'
  : !REDIS_BASE
    ? 'TEST_REDIS_URL is not set (make test sets it)'
    : false;

// ---------------------------------------------------------------------------------------------
// Prices and the exact cost of one request (micro-dollars).

const IN_MICROS = 1; // input_cost_per_token $0.000001
const OUT_MICROS = 100; // output_cost_per_token $0.0001
const MAX_TOKENS = 16;
const REPLY_PIECES = 16; // "This is a mock response from Tollgate. It is deterministic, …"

const PRICES = `input_cost_per_token: 0.000001, output_cost_per_token: 0.0001`;
const CONFIG = [
  'model_list:',
  '  - model_name: exact',
  `    litellm_params: {model: mock/exact-slow, ${PRICES}, mock_ttft_ms: 150}`,
  '  - model_name: exact-fast',
  `    litellm_params: {model: mock/exact-fast, ${PRICES}}`,
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

const CONTENT = 'ping';

function bodyText(model) {
  return JSON.stringify({ model, messages: [{ role: 'user', content: CONTENT }], max_tokens: MAX_TOKENS });
}

/** The actual cost of one request (what it is billed). */
const ACTUAL = Math.ceil(CONTENT.length / 4) * IN_MICROS + REPLY_PIECES * OUT_MICROS;
/** The admission estimate of one request of `model` (what it reserves). */
const estimate = (model) => Math.ceil(Buffer.byteLength(bodyText(model)) / 4) * IN_MICROS + MAX_TOKENS * OUT_MICROS;

const dollars = (micros) => micros / 1e6;
const micros = (usd) => Math.round(Number(usd) * 1e6);

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs fn(i) for i in 0..n-1 with at most `concurrency` in flight; results in order. */
async function pool(n, concurrency, fn) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
  return out;
}

/**
 * One chat call; never rejects. ok: a complete 200 response. status 0 with `error` when the
 * connection failed or broke.
 */
async function chat(base, key, model = 'exact', headers = {}) {
  try {
    const r = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      body: bodyText(model),
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      timeoutMs: 30000,
    });
    if (!r.complete) return { status: 0, error: `incomplete response (${r.error && r.error.message})`, headers: r.headers, base };
    return { status: r.status, headers: r.headers, json: r.json, text: r.text, ok: r.status === 200, base };
  } catch (e) {
    return { status: 0, error: e.code || e.message, base };
  }
}

async function newKey(base, fields) {
  const g = await postJSON(`${base}/key/generate`, fields);
  assert.equal(g.status, 200, `/key/generate: ${g.text}`);
  assert.match(g.json.key, /^sk-/);
  return g.json.key;
}

/** Spend rows of a key, as /spend/logs returns them. */
async function spendRows(base, key) {
  const r = await getJSON(`${base}/spend/logs?api_key=${encodeURIComponent(key)}`);
  assert.equal(r.status, 200, `/spend/logs: ${r.text.slice(0, 500)}`);
  assert.ok(Array.isArray(r.json), `/spend/logs is not an array: ${r.text.slice(0, 300)}`);
  return r.json;
}

/**
 * Polls /spend/logs until it holds at least `want` rows and the count has not changed for
 * 400 ms, or `ms` passes; returns the last rows.
 */
async function settledRows(base, key, want, ms = 6000) {
  const deadline = Date.now() + ms;
  let rows = [];
  let last = -1;
  let stableSince = 0;
  for (;;) {
    try {
      rows = await spendRows(base, key);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(200);
      continue;
    }
    if (rows.length !== last) {
      last = rows.length;
      stableSince = Date.now();
    }
    if (rows.length >= want && Date.now() - stableSince >= 400) return rows;
    if (Date.now() > deadline) return rows;
    await sleep(100);
  }
}

/** /key/info spend in micro-dollars, polled until it equals `want` or `ms` passes. */
async function keySpend(base, key, want, ms = 5000) {
  const deadline = Date.now() + ms;
  let got;
  for (;;) {
    const r = await getJSON(`${base}/key/info?key=${encodeURIComponent(key)}`);
    assert.equal(r.status, 200, `/key/info: ${r.text}`);
    got = micros(r.json.info.spend);
    if (got === want || Date.now() > deadline) return got;
    await sleep(100);
  }
}

function countBy(arr, f) {
  const m = new Map();
  for (const x of arr) m.set(f(x), (m.get(f(x)) || 0) + 1);
  return m;
}

/** A one-line digest of a set of results by status / error / code, for messages. */
function digest(results) {
  const m = countBy(results, (r) => (r.status ? `${r.status}${r.json?.error?.code ? `:${r.json.error.code}` : ''}` : `err:${r.error}`));
  return JSON.stringify(Object.fromEntries(m));
}

/**
 * Checks spend rows against the 200 responses: one row per response's x-request-id, no request
 * id twice, each row's spend equal to the response's cost header. Returns { extra } — rows that
 * match no 200 response.
 */
function checkRowsAgainstResponses(rows, oks) {
  const ids = rows.map((r) => r.request_id);
  const dup = [...countBy(ids, (x) => x)].filter(([, n]) => n > 1);
  assert.deepEqual(dup, [], 'a request id appears twice in spend_logs');
  const byId = new Map(rows.map((r) => [r.request_id, r]));
  const missing = [];
  const wrong = [];
  for (const r of oks) {
    const rid = r.headers['x-request-id'];
    const row = byId.get(rid);
    if (!row) {
      missing.push(rid);
      continue;
    }
    const header = r.headers['x-litellm-response-cost'];
    if (header === undefined || micros(row.spend) !== micros(header)) wrong.push({ rid, row: row.spend, header });
  }
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${oks.length} completed requests have no spend row`);
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} spend rows differ from the x-litellm-response-cost header`);
  const okIds = new Set(oks.map((r) => r.headers['x-request-id']));
  return { extra: rows.filter((r) => !okIds.has(r.request_id)) };
}

/** Request ids of every intact record in an instance's journal files (format: gateway/spend.h). */
function journalIds(dir, instance) {
  const ids = new Set();
  for (const f of fs.readdirSync(dir)) {
    if (!f.startsWith(`spend-${instance}.`) || !f.endsWith('.journal')) continue;
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      // format 2: tab-separated fields, the request id first; format 1 (older versions): JSON
      const m = /^S([12]) ([0-9]+) [0-9a-f]{8} (.*)$/.exec(line);
      if (!m || Buffer.byteLength(m[3]) !== Number(m[2])) continue; /* torn */
      if (m[1] === '2') {
        ids.add(m[3].split('\t')[0]);
        continue;
      }
      try {
        ids.add(JSON.parse(m[3]).id);
      } catch {
        /* torn */
      }
    }
  }
  return ids;
}

function assertRateLimitHeaders(r, { requests } = {}) {
  const h = r.headers;
  assert.match(String(h['retry-after']), /^[1-9][0-9]*$/, `retry-after: ${h['retry-after']}`);
  if (requests !== undefined) {
    assert.equal(h['x-ratelimit-limit-requests'], String(requests), 'x-ratelimit-limit-requests');
    assert.equal(h['x-ratelimit-remaining-requests'], '0', 'x-ratelimit-remaining-requests');
    assert.ok(h['x-ratelimit-reset-requests'], 'x-ratelimit-reset-requests present');
  }
}

// ---------------------------------------------------------------------------------------------
// Three instances sharing one PostgreSQL database and one Redis database.

describe('exactness: 3 instances sharing PostgreSQL and Redis', { skip: SKIP }, () => {
  const inst = []; // { tg, env, port }
  const secrets = [MASTER_KEY];
  let cfgEnv;
  const urls = () => inst.map((x) => x.tg.url);

  async function startInstance(i, port) {
    const env = inst[i] ? inst[i].env : { ...cfgEnv, TOLLGATE_DATA_DIR: makeTempDir('tollgate-exact-data-'), TOLLGATE_INSTANCE_ID: `exact-${'abc'[i]}` };
    const tg = await startTollgate({ config: CONFIG, env, port, readyTimeoutMs: 20000 });
    inst[i] = { tg, env, port: tg.port };
    return tg;
  }

  before(async () => {
    cfgEnv = { DATABASE_URL: freshPgDatabase('exact', DB_BASE), REDIS_URL: freshRedisDb(7, REDIS_BASE) };
    // the first instance migrates the fresh database; then the others
    await startInstance(0);
    await Promise.all([startInstance(1), startInstance(2)]);
    for (const x of inst) {
      const r = await getJSON(`${x.tg.url}/health/readiness`, { key: null });
      assert.equal(r.status, 200, r.text);
    }
  });
  after(async () => {
    for (const x of inst) if (x && x.tg.alive()) await x.tg.stop('SIGKILL');
  });

  test('1. 200 parallel requests, budget worth 50: the budget holds and every admitted request is billed once', { timeout: 60000 }, async () => {
    const E = estimate('exact');
    const A = ACTUAL;
    assert.ok(E >= A, 'the test is built on an estimate that covers the cost');
    const budget = 50 * A;
    const key = await newKey(urls()[0], { max_budget: dollars(budget) });
    secrets.push(key);

    const results = await pool(200, 200, (i) => chat(urls()[i % 3], key));
    const oks = results.filter((r) => r.ok);
    const others = results.filter((r) => !r.ok);
    const bad = others.filter((r) => r.status !== 429 || r.json?.error?.code !== 'budget_exceeded');
    assert.deepEqual(bad.slice(0, 5).map((r) => `${r.status} ${r.error || r.text}`), [], `not budget refusals: ${digest(results)}`);
    for (const r of others.slice(0, 20)) {
      assert.equal(openAIErrorShapeProblem(r.json), null, r.text);
      assert.match(r.json.error.message, /budget/i, r.json.error.message);
    }
    for (const r of oks) assert.equal(micros(r.headers['x-litellm-response-cost']), A, 'cost header of a 200');

    // Admission needs spend + reservations + E <= budget, and settles A <= E. So until
    // floor(budget / E) requests are in, nothing is refused; and what is billed never passes the
    // budget by more than one estimate error (here it cannot pass it at all, since E >= A).
    const minAdmitted = Math.floor(budget / E);
    const maxAdmitted = Math.floor((budget + (E - A)) / A);
    assert.ok(
      oks.length >= minAdmitted && oks.length <= maxAdmitted,
      `admitted ${oks.length}, expected ${minAdmitted}..${maxAdmitted} (budget ${budget} µ$, estimate ${E}, cost ${A}): ${digest(results)}`,
    );
    assert.ok(oks.length * A <= budget + (E - A), `billed ${oks.length * A} µ$ > budget ${budget} + one estimate error ${E - A}`);

    console.log(`# 1: admitted ${oks.length} of 200 (bounds ${minAdmitted}..${maxAdmitted}): ${digest(results)}`);
    const rows = await settledRows(urls()[1], key, oks.length);
    const { extra } = checkRowsAgainstResponses(rows, oks);
    assert.equal(extra.length, 0, `spend rows for requests that were not admitted: ${JSON.stringify(extra.slice(0, 3))}`);
    assert.equal(rows.length, oks.length, 'one spend row per admitted request');
    const rowSum = rows.reduce((s, r) => s + micros(r.spend), 0);
    assert.ok(rowSum <= budget + (E - A), `spend_logs total ${rowSum} µ$ over budget ${budget}`);
    assert.equal(await keySpend(urls()[2], key, rowSum), rowSum, '/key/info spend equals the spend rows');
  });

  test('2. a burst of 20 against rpm_limit 5 across 3 instances admits exactly 5', { timeout: 30000 }, async () => {
    const key = await newKey(urls()[0], { rpm_limit: 5 });
    secrets.push(key);
    // rpm windows are the clock's minutes: keep the burst inside one
    const intoMinute = Date.now() % 60000;
    if (intoMinute > 57000) await sleep(60000 - intoMinute + 300);

    const results = await pool(20, 20, (i) => chat(urls()[i % 3], key, 'exact-fast'));
    const oks = results.filter((r) => r.ok);
    assert.equal(oks.length, 5, `admitted ${oks.length} of 20 against rpm_limit 5: ${digest(results)}`);
    const refused = results.filter((r) => !r.ok);
    for (const r of refused) {
      assert.equal(r.status, 429, `${r.status} ${r.error || r.text}`);
      assert.equal(openAIErrorShapeProblem(r.json), null, r.text);
      assert.equal(r.json.error.code, 'rate_limit_exceeded', r.text);
      assert.match(r.json.error.message, /rpm/i, r.json.error.message);
      assertRateLimitHeaders(r, { requests: 5 });
      assert.ok(Number(r.headers['retry-after']) <= 60, `retry-after ${r.headers['retry-after']}`);
    }
    // each admitted request saw the shared counter: remaining 4, 3, 2, 1, 0
    const remaining = oks.map((r) => Number(r.headers['x-ratelimit-remaining-requests'])).sort();
    assert.deepEqual(remaining, [0, 1, 2, 3, 4], `x-ratelimit-remaining-requests of the admitted: ${JSON.stringify(oks.map((r) => r.headers['x-ratelimit-remaining-requests']))}`);
    for (const r of oks) assert.equal(r.headers['x-ratelimit-limit-requests'], '5');
  });

  test('5. budget_duration "2s": refused past the budget, admitted again after the reset', { timeout: 30000 }, async () => {
    const E = estimate('exact-fast');
    const A = ACTUAL;
    // sequential: the 2nd needs A + E <= budget, the 3rd 2A + E > budget
    const budget = A + E;
    const t0 = Date.now();
    const key = await newKey(urls()[0], { max_budget: dollars(budget), budget_duration: '2s' });
    secrets.push(key);
    const r1 = await chat(urls()[0], key, 'exact-fast');
    const r2 = await chat(urls()[1], key, 'exact-fast');
    const r3 = await chat(urls()[2], key, 'exact-fast');
    const took = Date.now() - t0;
    assert.ok(took < 1800, `the first three requests took ${took} ms, longer than the budget period allows for this test`);
    assert.equal(r1.status, 200, r1.text || r1.error);
    assert.equal(r2.status, 200, r2.text || r2.error);
    assert.equal(r3.status, 429, r3.text || r3.error);
    assert.equal(r3.json.error.code, 'budget_exceeded', r3.text);
    assert.match(r3.json.error.message, /budget/i);
    assert.match(String(r3.headers['retry-after']), /^[1-9][0-9]*$/, `retry-after: ${r3.headers['retry-after']}`);
    assert.ok(Number(r3.headers['retry-after']) <= 3, `retry-after ${r3.headers['retry-after']} for a 2 s period`);

    // the period ends ~2 s after the key was made; poll (on another instance) until admitted
    let again;
    const deadline = t0 + 6000;
    let n = 0;
    while (Date.now() < deadline) {
      again = await chat(urls()[n++ % 3], key, 'exact-fast');
      if (again.status !== 429) break;
      await sleep(200);
    }
    assert.equal(again.status, 200, `not admitted ${Date.now() - t0} ms after the key was made: ${again.text || again.error}`);
    assert.ok(Date.now() - t0 >= 1900, `admitted again after only ${Date.now() - t0} ms`);
    // a full new period: one more fits, then refused again
    const again2 = await chat(urls()[(n + 1) % 3], key, 'exact-fast');
    const again3 = await chat(urls()[(n + 2) % 3], key, 'exact-fast');
    const tookAgain = Date.now() - t0;
    if (tookAgain < 3800) {
      assert.equal(again2.status, 200, again2.text || again2.error);
      assert.equal(again3.status, 429, again3.text || again3.error);
    }
    const oks = [r1, r2, again, again2, again3].filter((r) => r.ok);
    const rows = await settledRows(urls()[0], key, oks.length);
    assert.equal(rows.length, oks.length, 'one spend row per admitted request');
    checkRowsAgainstResponses(rows, oks);
  });

  test('a client-chosen x-request-id cannot merge the billing of two requests', { timeout: 30000 }, async () => {
    const key = await newKey(urls()[0], {});
    secrets.push(key);
    const rid = `exact-dup-${process.pid}-${Date.now()}`;
    const a = await chat(urls()[0], key, 'exact-fast', { 'x-request-id': rid });
    const b = await chat(urls()[1], key, 'exact-fast', { 'x-request-id': rid });
    assert.equal(a.status, 200, a.text || a.error);
    assert.equal(b.status, 200, b.text || b.error);
    const rows = await settledRows(urls()[2], key, 2, 4000);
    assert.equal(rows.length, 2, `two completed requests with the same client x-request-id: ${rows.length} spend row(s) (${JSON.stringify(rows.map((r) => r.request_id))})`);
    // x-request-id echoes the client's; x-litellm-call-id names each request's own spend row
    assert.equal(a.headers['x-request-id'], rid);
    assert.equal(b.headers['x-request-id'], rid);
    assert.deepEqual(rows.map((r) => r.request_id).sort(), [a.headers['x-litellm-call-id'], b.headers['x-litellm-call-id']].sort());
    assert.equal(await keySpend(urls()[2], key, 2 * ACTUAL), 2 * ACTUAL, '/key/info spend bills both requests');
  });

  test('3. kill -9 of an instance under load, restart: spend rows equal the completed responses, none twice', { timeout: 90000 }, async () => {
    const key = await newKey(urls()[0], { max_budget: 1000 });
    secrets.push(key);
    const N = 200;
    const victim = 1;
    const port = inst[victim].port;
    const base = urls(); // the victim comes back on the same port
    const inflightAtVictim = new Set();
    let done = 0;
    let killed = false;
    let brokenAtKill = 0; // requests in flight at the victim when it died

    const results = await pool(N, 30, async (i) => {
      const target = i % 3;
      if (target === victim) inflightAtVictim.add(i);
      const r = await chat(base[target], key, 'exact');
      inflightAtVictim.delete(i);
      r.target = target;
      done++;
      // kill right after one of the victim's responses completed: its spend record is in the
      // journal, and most likely not yet in the store
      if (!killed && done >= 60 && target === victim && r.ok) {
        killed = true;
        brokenAtKill = inflightAtVictim.size;
        inst[victim].tg.proc.kill('SIGKILL');
      }
      return r;
    });
    assert.ok(killed, 'the instance was killed under load');
    await inst[victim].tg.exited;
    const oks = results.filter((r) => r.ok);
    const failed = results.filter((r) => !r.ok);
    console.log(`# 3: ${digest(results)}; ${brokenAtKill} in flight at the killed instance`);
    const notConn = failed.filter((r) => r.status !== 0);
    assert.deepEqual(notConn.slice(0, 5).map((r) => `${r.status} ${r.text}`), [], `failures other than connection errors: ${digest(results)}`);
    assert.ok(failed.every((r) => r.target === victim), 'only requests to the killed instance failed');
    assert.ok(brokenAtKill > 0, 'requests were in flight at the instance when it was killed');

    // Every response the victim completed is in its journal (written before the last byte).
    const dataDir = inst[victim].env.TOLLGATE_DATA_DIR;
    const journaled = journalIds(dataDir, 'exact-b');
    const victimOks = oks.filter((r) => r.target === victim);
    const notJournaled = victimOks.filter((r) => !journaled.has(r.headers['x-request-id']));
    assert.deepEqual(notJournaled.map((r) => r.headers['x-request-id']), [], 'completed responses of the killed instance missing from its journal');
    // What the store has before the restart: the rest must come from the journal's replay.
    await sleep(800);
    const before = new Set((await spendRows(urls()[0], key)).map((r) => r.request_id));
    const pending = victimOks.filter((r) => !before.has(r.headers['x-request-id'])).length;
    console.log(`# 3: ${victimOks.length} completed at the killed instance, ${pending} of them not in the store before its restart`);

    await startInstance(victim, port);
    const rows = await settledRows(urls()[0], key, oks.length, 10000);
    const { extra } = checkRowsAgainstResponses(rows, oks);
    // A request can be journaled (before its last byte) and then lose its response to the kill:
    // billed, though the client saw an error. Only requests in flight at the victim can be.
    assert.ok(
      extra.length <= brokenAtKill,
      `${extra.length} spend rows match no completed response (only ${brokenAtKill} were in flight at the killed instance)`,
    );
    const headerSum = oks.reduce((s, r) => s + micros(r.headers['x-litellm-response-cost']), 0);
    const rowSum = rows.reduce((s, r) => s + micros(r.spend), 0);
    const extraSum = extra.reduce((s, r) => s + micros(r.spend), 0);
    assert.equal(rowSum - extraSum, headerSum, 'spend rows total equals the cost headers');
    assert.equal(await keySpend(urls()[2], key, rowSum), rowSum, '/key/info spend equals the spend rows');
    if (extra.length) console.log(`# 3: ${extra.length} request(s) billed whose response was cut by kill -9`);
    // the restarted instance serves again
    const r = await chat(urls()[victim], key, 'exact-fast');
    assert.equal(r.status, 200, r.text || r.error);
  });

  test('instances stay healthy and exit cleanly; no key in their output', { timeout: 60000 }, async () => {
    for (const x of inst) await assertHealthyThenCleanExit(x.tg, assert, secrets);
  });
});

// ---------------------------------------------------------------------------------------------
// PostgreSQL outage under load: a throwaway server of our own so stopping it disturbs no one.

const PGTMP = path.join(REPO_ROOT, 'scripts', 'pgtmp.sh');

describe('exactness: PostgreSQL stopped under load', { skip: SKIP }, () => {
  let pgDir;
  let pgUrl;
  let pgRunning = false;
  let tg;
  let key;
  const stopPg = () => {
    if (pgDir && pgRunning) {
      spawnSync(PGTMP, ['stop', pgDir], { encoding: 'utf8', timeout: 40000 });
      pgRunning = false;
    }
  };
  const onExit = () => stopPg();

  before(async () => {
    const parent = makeTempDir('tollgate-exact-pg-');
    fs.chmodSync(parent, 0o755); // the server may run as another user (pgtmp.sh as root)
    pgDir = path.join(parent, 'pg');
    process.on('exit', onExit);
    const up = spawnSync(PGTMP, ['up', pgDir], { encoding: 'utf8', timeout: 60000 });
    assert.equal(up.status, 0, `pgtmp.sh up: ${up.stderr}`);
    pgRunning = true;
    pgUrl = up.stdout.trim().split('\n').pop();
    tg = await startTollgate({ config: CONFIG, env: { DATABASE_URL: pgUrl, TOLLGATE_INSTANCE_ID: 'exact-pg' }, readyTimeoutMs: 20000 });
    key = await newKey(tg.url, { max_budget: 1000 });
  });
  after(async () => {
    if (tg && tg.alive()) await tg.stop('SIGKILL');
    stopPg();
    process.off('exit', onExit);
  });

  test('4. requests with a cached key keep flowing; spend arrives after it returns, nothing lost or doubled', { timeout: 150000 }, async () => {
    // cache the key
    const warm = await chat(tg.url, key, 'exact');
    assert.equal(warm.status, 200, warm.text || warm.error);

    // The issue's figure: PostgreSQL stopped for 30 s under load. Longer than the key cache's
    // freshness (30 s), so the key is served stale while reloads fail.
    const OUTAGE_MS = 30000;
    const MAX_REQ = 900; // /spend/logs returns up to 1000 rows; ~20 requests/s below
    const results = [warm];
    let phase = 'before';
    let outageStart = 0;
    let stopLoad = false;
    const load = pool(4, 4, async () => {
      while (!stopLoad && results.length < MAX_REQ) {
        const p = phase;
        const r = await chat(tg.url, key, 'exact');
        r.phase = p;
        r.at = Date.now();
        results.push(r);
        await sleep(200);
      }
    });
    await sleep(1500);
    const t = spawnSync(PGTMP, ['stop', pgDir], { encoding: 'utf8', timeout: 40000 });
    assert.equal(t.status, 0, `pgtmp.sh stop: ${t.stderr}`);
    pgRunning = false;
    phase = 'outage';
    outageStart = Date.now();
    await sleep(1000);
    const ready = await getJSON(`${tg.url}/health/readiness`, { key: null });
    await sleep(OUTAGE_MS - 1000);
    phase = 'after';
    const s = spawnSync(PGTMP, ['start', pgDir], { encoding: 'utf8', timeout: 40000 });
    assert.equal(s.status, 0, `pgtmp.sh start: ${s.stderr}`);
    pgRunning = true;
    await sleep(2000);
    stopLoad = true;
    await load;

    // requests kept flowing to the end of the outage, past the key cache's 30 s freshness
    const late = results.filter((r) => r.phase === 'outage' && r.at - outageStart > OUTAGE_MS - 3000);
    assert.ok(late.length >= 5 && late.every((r) => r.ok), `requests in the outage's last 3 s: ${digest(late)}`);
    const during = results.filter((r) => r.phase === 'outage');
    assert.ok(during.length >= 100, `only ${during.length} requests during the outage`);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed.slice(0, 5).map((r) => `${r.phase} ${r.status} ${r.error || r.text}`), [], `failed requests: ${digest(results)}`);
    assert.notEqual(ready.json?.db, 'connected', `readiness during the outage: ${ready.text}`);

    const oks = results.filter((r) => r.ok);
    console.log(`# 4: ${results.length} requests, ${during.length} during the outage: ${digest(results)}; readiness then: ${ready.text}`);
    const t1 = Date.now();
    const rows = await settledRows(tg.url, key, oks.length, 25000);
    console.log(`# 4: ${rows.length} spend rows ${Date.now() - t1} ms after the load ended`);
    const { extra } = checkRowsAgainstResponses(rows, oks);
    assert.equal(extra.length, 0, 'no spend rows without a completed response');
    assert.equal(rows.length, oks.length, `spend rows ${rows.length} != completed responses ${oks.length}`);
    const want = oks.reduce((s2, r) => s2 + micros(r.headers['x-litellm-response-cost']), 0);
    assert.equal(await keySpend(tg.url, key, want, 10000), want, '/key/info spend equals the responses');
    await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY, key]);
  });
});
