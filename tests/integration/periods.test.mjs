// Budget periods that reset in the store (gateway/budgets.h), through the real binary:
//   - on SQLite, for a key, a user, a team, a customer (end user, through its budget) and an
//     organization, each with max_budget worth one request and budget_duration "3s": the request
//     is admitted, the next refused with budget_exceeded; the admin API shows the period's spend;
//     after the period ends the admin API shows spend 0 and the next budget_reset_at (exactly one
//     or more whole periods after the old one, in the future), and requests are admitted again;
//   - a restart after a reset reads the reset rows (spend 0, the new period) from the store;
//   - on PostgreSQL, two instances sharing the database (each runs the reset job every second):
//     a key with a 2 s period is reset once per period — never twice — as the changes feed and
//     the reset times show, and both instances see the reset.
//
// Every request's cost is known: the mock deployment has fixed per-token prices, prompt_tokens =
// ceil(content chars / 4), completion_tokens = 16, and max_tokens 16, so both the admission
// estimate and the actual cost are exact.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  startTollgate,
  request,
  postJSON,
  getJSON,
  sleep,
  makeTempDir,
  MASTER_KEY,
  assertHealthyThenCleanExit,
  freshPgDatabase,
} from '../lib/harness.mjs';

const IN_MICROS = 1; // input_cost_per_token $0.000001
const OUT_MICROS = 100; // output_cost_per_token $0.0001
const MAX_TOKENS = 16;
const REPLY_PIECES = 16;
const CONTENT = 'ping';

const CONFIG = [
  'model_list:',
  '  - model_name: priced',
  '    litellm_params: {model: mock/priced-1, input_cost_per_token: 0.000001, output_cost_per_token: 0.0001}',
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

const ACTUAL = Math.ceil(CONTENT.length / 4) * IN_MICROS + REPLY_PIECES * OUT_MICROS;
const bodyOf = (user) =>
  JSON.stringify({ model: 'priced', messages: [{ role: 'user', content: CONTENT }], max_tokens: MAX_TOKENS, ...(user ? { user } : {}) });
const estimateOf = (body) => Math.ceil(Buffer.byteLength(body) / 4) * IN_MICROS + MAX_TOKENS * OUT_MICROS;
/** A budget that admits one request (0 + E <= B) and refuses the next (A + E > B). */
const oneRequestBudget = (body) => (estimateOf(body) + Math.floor(ACTUAL / 2)) / 1e6;
const micros = (usd) => Math.round(Number(usd) * 1e6);

async function chat(base, key, body) {
  const r = await request(`${base}/v1/chat/completions`, {
    method: 'POST',
    body,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    timeoutMs: 20000,
  });
  return { status: r.status, json: r.json, text: r.text, headers: r.headers };
}

async function admin(base, path, body) {
  const r = await postJSON(`${base}${path}`, body);
  assert.equal(r.status, 200, `${path}: ${r.text}`);
  return r.json;
}

/** Polls read() (→ {spend µ$, reset ms}) until pred holds or the deadline passes; returns the last. */
async function pollUntil(read, pred, deadline) {
  let last;
  for (;;) {
    last = await read();
    if (pred(last) || Date.now() > deadline) return last;
    await sleep(100);
  }
}

/**
 * One budget through a period: admitted, refused, the store shows the spend; after the period the
 * store shows spend 0 and the next reset time, and a request is admitted again.
 */
async function periodCycle({ label, base, key, body, read, dur }) {
  const r1 = await chat(base, key, body);
  assert.equal(r1.status, 200, `${label}: first request: ${r1.text}`);
  const r2 = await chat(base, key, body);
  assert.equal(r2.status, 429, `${label}: second request should be refused: ${r2.text}`);
  assert.equal(r2.json.error.code, 'budget_exceeded', `${label}: ${r2.text}`);

  const first = await read();
  assert.ok(first.reset > 0, `${label}: no budget_reset_at`);
  // the spend writer books the request in the store; wait for it (while the period lasts)
  const booked = await pollUntil(read, (x) => x.spend === ACTUAL || x.reset !== first.reset, first.reset - 300);
  if (Date.now() < first.reset - 300) assert.equal(booked.spend, ACTUAL, `${label}: the period's spend in the store`);

  // past the period's end: the reset job zeroes the spend and moves the reset time
  const reset = await pollUntil(read, (x) => x.reset > first.reset, first.reset + 4000);
  const seenAt = Date.now();
  assert.ok(reset.reset > first.reset, `${label}: budget_reset_at still ${new Date(first.reset).toISOString()} ${seenAt - first.reset} ms after it passed`);
  assert.equal((reset.reset - first.reset) % dur, 0, `${label}: the next end is whole periods after the old one (${reset.reset - first.reset} ms)`);
  assert.ok(reset.reset > seenAt - 50, `${label}: the new reset time ${new Date(reset.reset).toISOString()} is not in the future`);
  assert.equal(reset.spend, 0, `${label}: spend after the reset`);

  const r3 = await chat(base, key, body);
  assert.equal(r3.status, 200, `${label}: admitted again after the reset: ${r3.text}`);
  return reset;
}

function psqlValue(url, sql) {
  const r = spawnSync('psql', [url, '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------------------------

describe('budget periods reset in the store (SQLite)', () => {
  let tg;
  let dataDir;
  const secrets = [MASTER_KEY];
  const DUR = 3000;

  before(async () => {
    dataDir = makeTempDir('tollgate-periods-data-');
    tg = await startTollgate({ config: CONFIG, env: { TOLLGATE_DATA_DIR: dataDir } });
  });
  after(async () => {
    if (tg && tg.alive()) await tg.stop('SIGKILL');
  });

  test('key, user, team, customer and organization: refused in a period, reset in the store, admitted again', { timeout: 40000 }, async () => {
    const base = tg.url;
    const body = bodyOf();
    const budget = oneRequestBudget(body);
    const ms = (t) => (t ? Date.parse(t) : 0);

    // a key's own budget
    const k = await admin(base, '/key/generate', { max_budget: budget, budget_duration: '3s' });
    secrets.push(k.key);
    assert.ok(Math.abs(ms(k.budget_reset_at) - (Date.now() + DUR)) < 1500, `key budget_reset_at ${k.budget_reset_at}`);
    const keyInfo = async () => {
      const r = await getJSON(`${base}/key/info?key=${k.key}`);
      assert.equal(r.status, 200, r.text);
      return { spend: micros(r.json.info.spend), reset: ms(r.json.info.budget_reset_at) };
    };

    // a user's budget, through a key of the user's without a budget of its own
    await admin(base, '/user/new', { user_id: 'period-user', max_budget: budget, budget_duration: '3s', auto_create_key: false });
    const uk = await admin(base, '/key/generate', { user_id: 'period-user' });
    secrets.push(uk.key);
    const userInfo = async () => {
      const r = await getJSON(`${base}/user/info?user_id=period-user`);
      assert.equal(r.status, 200, r.text);
      return { spend: micros(r.json.user_info.spend), reset: ms(r.json.user_info.budget_reset_at) };
    };

    // a team's budget
    await admin(base, '/team/new', { team_id: 'period-team', max_budget: budget, budget_duration: '3s' });
    const tk = await admin(base, '/key/generate', { team_id: 'period-team' });
    secrets.push(tk.key);
    const teamInfo = async () => {
      const r = await getJSON(`${base}/team/info?team_id=period-team`);
      assert.equal(r.status, 200, r.text);
      return { spend: micros(r.json.team_info.spend), reset: ms(r.json.team_info.budget_reset_at) };
    };

    // a customer (end user): its budget row holds the period; the master key is limited by it
    const custBody = bodyOf('period-cust');
    await admin(base, '/customer/new', { user_id: 'period-cust', max_budget: oneRequestBudget(custBody), budget_duration: '3s' });
    const custInfo = async () => {
      const r = await getJSON(`${base}/customer/info?end_user_id=period-cust`);
      assert.equal(r.status, 200, r.text);
      return { spend: micros(r.json.spend), reset: ms(r.json.litellm_budget_table?.budget_reset_at) };
    };

    // an organization: its budget row too
    await admin(base, '/organization/new', { organization_id: 'period-org', organization_alias: 'period org', max_budget: budget, budget_duration: '3s' });
    const ok = await admin(base, '/key/generate', { organization_id: 'period-org' });
    secrets.push(ok.key);
    const orgInfo = async () => {
      const r = await getJSON(`${base}/organization/info?organization_id=period-org`);
      assert.equal(r.status, 200, r.text);
      return { spend: micros(r.json.spend), reset: ms(r.json.litellm_budget_table?.budget_reset_at) };
    };

    const results = await Promise.all([
      periodCycle({ label: 'key', base, key: k.key, body, read: keyInfo, dur: DUR }),
      periodCycle({ label: 'user', base, key: uk.key, body, read: userInfo, dur: DUR }),
      periodCycle({ label: 'team', base, key: tk.key, body, read: teamInfo, dur: DUR }),
      periodCycle({ label: 'customer', base, key: MASTER_KEY, body: custBody, read: custInfo, dur: DUR }),
      periodCycle({ label: 'organization', base, key: ok.key, body, read: orgInfo, dur: DUR }),
    ]);

    // the request admitted in the new period is booked in it
    const after = await pollUntil(keyInfo, (x) => x.spend === ACTUAL || x.reset !== results[0].reset, results[0].reset - 200);
    if (after.reset === results[0].reset) assert.equal(after.spend, ACTUAL, 'the new period holds the new request');
  });

  test('a restart reads the reset rows: spend 0 and the new period from the store', { timeout: 30000 }, async () => {
    let base = tg.url;
    const body = bodyOf();
    const k = await admin(base, '/key/generate', { max_budget: oneRequestBudget(body), budget_duration: '2s' });
    secrets.push(k.key);
    assert.equal((await chat(base, k.key, body)).status, 200);
    assert.equal((await chat(base, k.key, body)).status, 429);
    const first = Date.parse(k.budget_reset_at);
    const info = async (b) => {
      const r = await getJSON(`${b}/key/info?key=${k.key}`);
      return { spend: micros(r.json.info.spend), reset: Date.parse(r.json.info.budget_reset_at) };
    };
    const reset = await pollUntil(() => info(base), (x) => x.reset > first, first + 4000);
    assert.ok(reset.reset > first, 'reset by the job');
    await assertHealthyThenCleanExit(tg, assert, secrets);
    tg = await startTollgate({ config: CONFIG, env: { TOLLGATE_DATA_DIR: dataDir } });
    base = tg.url;
    const again = await info(base);
    assert.ok(again.reset >= reset.reset, 'the store kept the new period');
    assert.equal((again.reset - first) % 2000, 0);
    const r = await chat(base, k.key, body);
    assert.equal(r.status, 200, `admitted after the restart: ${r.text}`);
  });

  test('clean exit, no secrets in the output', async () => {
    await assertHealthyThenCleanExit(tg, assert, secrets);
  });
});

describe('budget periods with two instances on one PostgreSQL', { skip: !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set' }, () => {
  const inst = [];
  let dbUrl;
  const secrets = [MASTER_KEY];

  before(async () => {
    dbUrl = freshPgDatabase('periods');
    const env = () => ({ DATABASE_URL: dbUrl, TOLLGATE_DATA_DIR: makeTempDir('tollgate-periods-pg-') });
    inst.push(await startTollgate({ config: CONFIG, env: env(), readyTimeoutMs: 20000 })); // migrates
    inst.push(await startTollgate({ config: CONFIG, env: env(), readyTimeoutMs: 20000 }));
  });
  after(async () => {
    for (const tg of inst) if (tg && tg.alive()) await tg.stop('SIGKILL');
  });

  test('a 2 s period is reset once per period by two instances, and both see it', { timeout: 40000 }, async () => {
    const [a, b] = inst.map((t) => t.url);
    const body = bodyOf();
    const k = await admin(a, '/key/generate', { max_budget: oneRequestBudget(body), budget_duration: '2s' });
    secrets.push(k.key);
    const first = Date.parse(k.budget_reset_at);
    const info = async (base) => {
      const r = await getJSON(`${base}/key/info?key=${k.key}`);
      assert.equal(r.status, 200, r.text);
      return { spend: micros(r.json.info.spend), reset: Date.parse(r.json.info.budget_reset_at) };
    };

    assert.equal((await chat(a, k.key, body)).status, 200);
    const refused = await chat(a, k.key, body);
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.error.code, 'budget_exceeded');

    // the other instance sees the reset made by whichever instance won
    const seen = await pollUntil(() => info(b), (x) => x.reset > first, first + 4000);
    assert.ok(seen.reset > first, 'instance b sees a reset');
    assert.equal(seen.spend, 0);
    const r = await chat(b, k.key, body);
    assert.equal(r.status, 200, `admitted on instance b in the new period: ${r.text}`);

    // let a few more periods pass with both instances running the job
    await sleep(first + 3 * 2000 + 1500 - Date.now());
    const last = await info(a);
    const periods = (last.reset - first) / 2000;
    assert.ok(Number.isInteger(periods) && periods >= 3, `reset time ${new Date(last.reset).toISOString()}, ${periods} periods after the first`);
    // every reset notes one change; the key was written once before (its creation)
    const resets = Number(psqlValue(dbUrl, `SELECT COUNT(*) FROM changes WHERE kind = 'key' AND id = '${k.token}'`)) - 1;
    assert.ok(resets >= 1, `no reset was noted (${resets})`);
    assert.ok(resets <= periods, `${resets} resets for ${periods} periods: a period was reset twice`);
    // an idle key's spend stays 0 and both instances agree
    const other = await info(b);
    assert.equal(other.reset, last.reset);
    assert.equal(last.spend, 0);
  });

  test('clean exit, no secrets in the output', async () => {
    for (const tg of inst) await assertHealthyThenCleanExit(tg, assert, secrets);
  });
});
