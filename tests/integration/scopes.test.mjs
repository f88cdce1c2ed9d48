// The scopes of the budget hierarchy beyond key, user, team, end user and organization, through
// the real binary and a real store (SQLite, one instance), on every model route:
//   - key × model: model_max_budget ({"budget_limit", "time_period"} and the older bare amount)
//     refuses that model once its budget is spent, never another model; model_rpm_limit /
//     model_tpm_limit given to /key/generate or /key/update live in the key's metadata (as in
//     LiteLLM) and limit that model only, on chat and /v1/messages;
//   - team member: /team/member_add with max_budget_in_team links a budget to the membership; a
//     team key of that user is refused past it (another member is not), and /team/member_update
//     raises it;
//   - model group: a deployment's rpm and litellm_params.max_parallel_requests limit the group
//     for every caller (the master key too), on chat, embeddings and /v1/chat, naming the model;
//   - global: litellm_settings.max_budget + budget_duration refuses every call past it, and a
//     restart on the same store still knows the period's spend.
// And, with PostgreSQL + Redis (make test provides them): two instances share a deployment's rpm
// and a key's model_rpm_limit exactly.
//
// Costs are exact: the mock deployment has fixed per-token prices; its usage is prompt_tokens =
// ceil(content chars / 4) and completion_tokens = 16, and the requests send max_tokens 16: one
// call costs 1601 µ$ and reserves about 1630 µ$, so a budget of $0.004 admits exactly 2.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTollgate,
  postJSON,
  getJSON,
  sleep,
  makeTempDir,
  MASTER_KEY,
  assertHealthyThenCleanExit,
  openAIErrorShapeProblem,
  freshPgDatabase,
  freshRedisDb,
} from '../lib/harness.mjs';

const PRICES = 'input_cost_per_token: 0.000001, output_cost_per_token: 0.0001';
const CONFIG = [
  'model_list:',
  '  - model_name: priced',
  `    litellm_params: {model: mock/priced, ${PRICES}}`,
  '  - model_name: priced-b',
  `    litellm_params: {model: mock/priced-b, ${PRICES}}`,
  '  - model_name: limited',
  `    litellm_params: {model: mock/limited, ${PRICES}, rpm: 2}`,
  '  - model_name: limited-embed',
  '    litellm_params: {model: mock/limited-embed}',
  '    rpm: 1',
  '  - model_name: one-at-a-time',
  `    litellm_params: {model: mock/one, ${PRICES}, max_parallel_requests: 1, mock_ttft_ms: 400}`,
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

const CONTENT = 'ping';
const ACTUAL = 1 * 1 + 16 * 100; // micro-dollars billed per chat request
const chat = (model = 'priced') => ({ model, messages: [{ role: 'user', content: CONTENT }], max_tokens: 16 });

/** Waits until at least `need` seconds are left in the current clock minute (rpm windows). */
async function roomInMinute(need = 10) {
  const s = new Date().getUTCSeconds() + new Date().getUTCMilliseconds() / 1000;
  if (s > 60 - need) await sleep((61 - s) * 1000);
}

function checkRefusal(r, code, pattern) {
  assert.equal(r.status, 429, r.text);
  assert.equal(openAIErrorShapeProblem(r.json), null, r.text);
  assert.equal(r.json.error.code, code, r.text);
  assert.match(r.json.error.message, pattern);
}

describe('scopes on SQLite, one instance', () => {
  let tg;
  const secrets = [MASTER_KEY];
  const admin = async (path, body) => {
    const r = await postJSON(`${tg.url}${path}`, body);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return r.json;
  };
  const call = (body, key = MASTER_KEY) => postJSON(`${tg.url}/v1/chat/completions`, body, { key });
  const newKey = async (body) => {
    const k = (await admin('/key/generate', body)).key;
    secrets.push(k);
    return k;
  };

  before(async () => {
    tg = await startTollgate({ config: CONFIG });
  });
  after(async () => {
    if (tg && tg.alive()) await tg.stop('SIGKILL');
  });

  test('model_max_budget refuses that model after its budget, not another model', async () => {
    const key = await newKey({ model_max_budget: { priced: { budget_limit: 0.004, time_period: '1d' } } });
    const info = await getJSON(`${tg.url}/key/info?key=${key}`);
    assert.equal(info.status, 200, info.text);
    assert.deepEqual(info.json.info.model_max_budget, { priced: { budget_limit: 0.004, time_period: '1d' } });
    for (let i = 0; i < 2; i++) {
      const r = await call(chat('priced'), key);
      assert.equal(r.status, 200, r.text);
      assert.equal(Number(r.headers['x-litellm-response-cost']), ACTUAL / 1e6);
    }
    const r3 = await call(chat('priced'), key);
    checkRefusal(r3, 'budget_exceeded', /key_model 'priced': max_budget 0\.004000 USD/);
    assert.doesNotMatch(r3.json.error.message, /[0-9a-f]{64}/, 'the key hash is not in the message');
    // another model of the same key has no per-model budget
    for (let i = 0; i < 3; i++) assert.equal((await call(chat('priced-b'), key)).status, 200);
    // /v1/messages on the spent model is refused too, in Anthropic's shape
    const m = await postJSON(
      `${tg.url}/v1/messages`,
      { model: 'priced', max_tokens: 16, messages: [{ role: 'user', content: CONTENT }] },
      { key },
    );
    assert.equal(m.status, 429, m.text);
    assert.equal(m.json.type, 'error', m.text);

    // LiteLLM's older form: a bare amount per model
    const old = await newKey({ model_max_budget: { 'priced-b': 0.004 } });
    assert.equal((await call(chat('priced-b'), old)).status, 200);
    assert.equal((await call(chat('priced-b'), old)).status, 200);
    checkRefusal(await call(chat('priced-b'), old), 'budget_exceeded', /key_model 'priced-b'/);
    assert.equal((await call(chat('priced'), old)).status, 200);

    const bad = await postJSON(`${tg.url}/key/generate`, { model_max_budget: { priced: { time_period: '1 day' } } });
    assert.equal(bad.status, 400, bad.text);
  });

  test('a per-model budget survives a restart: the key load seeds it from spend_logs', async () => {
    const env = { TOLLGATE_DATA_DIR: makeTempDir('tollgate-keymodel-') };
    let t2 = await startTollgate({ config: CONFIG, env });
    try {
      const k = (await postJSON(`${t2.url}/key/generate`, { model_max_budget: { priced: { budget_limit: 0.004, time_period: '1d' } } })).json.key;
      const undated = (await postJSON(`${t2.url}/key/generate`, { model_max_budget: { priced: 0.004 } })).json.key;
      for (const key of [k, undated]) {
        for (let i = 0; i < 2; i++) assert.equal((await postJSON(`${t2.url}/v1/chat/completions`, chat('priced'), { key })).status, 200);
        checkRefusal(await postJSON(`${t2.url}/v1/chat/completions`, chat('priced'), { key }), 'budget_exceeded', /key_model 'priced'/);
      }
      await assertHealthyThenCleanExit(t2, assert, [MASTER_KEY, k, undated]);
      t2 = await startTollgate({ config: CONFIG, env });
      for (const key of [k, undated]) {
        checkRefusal(await postJSON(`${t2.url}/v1/chat/completions`, chat('priced'), { key }), 'budget_exceeded', /key_model 'priced'/);
        assert.equal((await postJSON(`${t2.url}/v1/chat/completions`, chat('priced-b'), { key })).status, 200, 'other models still pass');
      }
      await assertHealthyThenCleanExit(t2, assert, [MASTER_KEY, k, undated]);
    } finally {
      if (t2.alive()) await t2.stop('SIGKILL');
    }
  });

  test('model_rpm_limit / model_tpm_limit live in metadata and limit that model only', async () => {
    const g = await admin('/key/generate', { model_rpm_limit: { priced: 2 }, metadata: { team: 'x' } });
    assert.deepEqual(g.model_rpm_limit, { priced: 2 }, 'the response echoes the field, as LiteLLM does');
    const key = g.key;
    secrets.push(key);
    const info = await getJSON(`${tg.url}/key/info?key=${key}`);
    assert.deepEqual(info.json.info.metadata, { team: 'x', model_rpm_limit: { priced: 2 } });
    await roomInMinute();
    const r1 = await call(chat('priced'), key);
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.headers['x-ratelimit-limit-requests'], '2');
    assert.equal(r1.headers['x-ratelimit-remaining-requests'], '1');
    const m = await postJSON(
      `${tg.url}/v1/messages`,
      { model: 'priced', max_tokens: 16, messages: [{ role: 'user', content: CONTENT }] },
      { key },
    );
    assert.equal(m.status, 200, m.text);
    const r3 = await call(chat('priced'), key);
    checkRefusal(r3, 'rate_limit_exceeded', /key_model 'priced': rpm_limit 2, remaining 0/);
    assert.ok(Number(r3.headers['retry-after']) >= 1, 'retry-after');
    assert.equal(r3.headers['x-ratelimit-remaining-requests'], '0');
    for (let i = 0; i < 3; i++) assert.equal((await call(chat('priced-b'), key)).status, 200);

    // /key/update merges model_tpm_limit into the stored metadata; a tpm of 10 is less than one
    // call's estimate (prompt + max_tokens 16), so priced-b is refused on tokens
    const up = await admin('/key/update', { key, model_tpm_limit: { 'priced-b': 10 } });
    assert.deepEqual(up.metadata, { team: 'x', model_rpm_limit: { priced: 2 }, model_tpm_limit: { 'priced-b': 10 } });
    checkRefusal(await call(chat('priced-b'), key), 'rate_limit_exceeded', /key_model 'priced-b': tpm_limit 10/);
    const bad = await postJSON(`${tg.url}/key/generate`, { model_rpm_limit: { priced: -1 } });
    assert.equal(bad.status, 400, bad.text);
  });

  test("a user's personal budget binds its personal keys, not its team keys (LiteLLM)", async () => {
    await admin('/user/new', { user_id: 'pb-user', max_budget: 0.004 });
    const team = (await admin('/team/new', { team_alias: 'pb-team' })).team_id;
    const teamKey = await newKey({ user_id: 'pb-user', team_id: team });
    const personal = await newKey({ user_id: 'pb-user' });
    for (let i = 0; i < 3; i++) assert.equal((await call(chat(), teamKey)).status, 200, `team key call ${i + 1}`);
    // the team key's spend is the user's spend too: the personal key is over the user's budget now
    checkRefusal(await call(chat(), personal), 'budget_exceeded', /user 'pb-user'/);
    assert.equal((await call(chat(), teamKey)).status, 200, 'the team key still spends the team budget');
  });

  test('team member budget: max_budget_in_team, another member unaffected, member_update raises it', async () => {
    const team = (await admin('/team/new', { team_alias: 'scoped' })).team_id;
    const added = await admin('/team/member_add', {
      team_id: team,
      member: { role: 'user', user_id: 'tm-a' },
      max_budget_in_team: 0.004,
    });
    assert.ok(added.team_id === team || added.team_id === undefined, JSON.stringify(added));
    await admin('/team/member_add', { team_id: team, member: { role: 'user', user_id: 'tm-b' } });
    const info = await getJSON(`${tg.url}/team/info?team_id=${team}`);
    const mem = info.json.team_memberships.find((x) => x.user_id === 'tm-a');
    assert.ok(mem && mem.budget_id, `membership has a budget: ${info.text}`);
    const budget = await getJSON(`${tg.url}/budget/info?budget_id=${mem.budget_id}`);
    assert.equal(budget.status, 200, budget.text);
    assert.match(budget.text, /"max_budget":\s*0\.004/);

    const ka = await newKey({ team_id: team, user_id: 'tm-a' });
    const kb = await newKey({ team_id: team, user_id: 'tm-b' });
    assert.equal((await call(chat(), ka)).status, 200);
    assert.equal((await call(chat(), ka)).status, 200);
    checkRefusal(await call(chat(), ka), 'budget_exceeded', new RegExp(`team_member 'tm-a/${team}'`));
    for (let i = 0; i < 3; i++) assert.equal((await call(chat(), kb)).status, 200, 'the other member');

    // the spend writer adds to team_membership.spend; after a raise the member's spend still counts
    const up = await admin('/team/member_update', { team_id: team, user_id: 'tm-a', max_budget_in_team: 0.006 });
    assert.deepEqual(up, { team_id: team, user_id: 'tm-a', user_email: null, max_budget_in_team: 0.006 });
    assert.equal((await call(chat(), ka)).status, 200, 'a raised budget applies at once');
    checkRefusal(await call(chat(), ka), 'budget_exceeded', /team_member/);
    const notMember = await postJSON(`${tg.url}/team/member_update`, { team_id: team, user_id: 'nobody', max_budget_in_team: 1 });
    assert.equal(notMember.status, 400, notMember.text);
  });

  test("a team's or user's own limits on /team/new and /user/new are not copied into member budgets", async () => {
    const team = (
      await admin('/team/new', { team_alias: 'own-limits', rpm_limit: 7, max_budget: 3, members_with_roles: [{ role: 'user', user_id: 'tm-own' }] })
    ).team_id;
    await admin('/user/new', { user_id: 'tm-own2', teams: [team], rpm_limit: 9, max_budget: 2 });
    const info = await getJSON(`${tg.url}/team/info?team_id=${team}`);
    assert.equal(info.status, 200, info.text);
    const mems = info.json.team_memberships.filter((x) => x.user_id === 'tm-own' || x.user_id === 'tm-own2');
    assert.equal(mems.length, 2, `both memberships exist: ${info.text}`);
    for (const m of mems) assert.equal(m.budget_id ?? null, null, `no member budget from the team's or user's own fields: ${JSON.stringify(m)}`);
  });

  test('deployment rpm limits the model group for every caller, on chat, embeddings and /v1/chat', async () => {
    await roomInMinute();
    const key = await newKey({});
    assert.equal((await call(chat('limited'))).status, 200);
    assert.equal((await call(chat('limited'), key)).status, 200);
    const r3 = await call(chat('limited'));
    checkRefusal(r3, 'rate_limit_exceeded', /model 'limited': rpm_limit 2/);
    assert.ok(Number(r3.headers['retry-after']) >= 1, 'retry-after');
    assert.equal(r3.headers['x-ratelimit-limit-requests'], '2');
    checkRefusal(await call(chat('limited'), key), 'rate_limit_exceeded', /model 'limited'/);
    const s = await postJSON(`${tg.url}/v1/chat`, { model: 'limited', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(s.status, 429, s.text);
    assert.match(s.text, /model 'limited'/);
    // other models are not affected
    assert.equal((await call(chat('priced'))).status, 200);

    // a deployment-level rpm (outside litellm_params) on an embeddings model
    const e1 = await postJSON(`${tg.url}/v1/embeddings`, { model: 'limited-embed', input: 'hello' });
    assert.equal(e1.status, 200, e1.text);
    const e2 = await postJSON(`${tg.url}/v1/embeddings`, { model: 'limited-embed', input: 'hello' });
    checkRefusal(e2, 'rate_limit_exceeded', /model 'limited-embed': rpm_limit 1/);
  });

  test('litellm_params.max_parallel_requests: one call at a time for the group', async () => {
    const [a, b] = await Promise.all([call(chat('one-at-a-time')), sleep(100).then(() => call(chat('one-at-a-time')))]);
    assert.equal(a.status, 200, a.text);
    checkRefusal(b, 'rate_limit_exceeded', /model 'one-at-a-time': max_parallel_requests 1/);
    assert.equal((await call(chat('one-at-a-time'))).status, 200, 'free again once the first ended');
  });

  test('healthy, clean exit, no key in the output', async () => {
    await assertHealthyThenCleanExit(tg, assert, secrets);
  });
});

describe('global budget (litellm_settings.max_budget)', () => {
  const config = (extra = []) =>
    [
      'model_list:',
      '  - model_name: priced',
      `    litellm_params: {model: mock/priced, ${PRICES}}`,
      'litellm_settings:',
      '  max_budget: 0.004',
      '  budget_duration: 1d',
      ...extra,
      'general_settings:',
      `  master_key: ${MASTER_KEY}`,
    ].join('\n');
  const env = { TOLLGATE_DATA_DIR: makeTempDir('tollgate-global-') };
  let tg;
  after(async () => {
    if (tg && tg.alive()) await tg.stop('SIGKILL');
  });

  test('refuses every caller past the proxy budget, and a restart remembers the spend', async () => {
    tg = await startTollgate({ config: config(), env });
    const key = (await postJSON(`${tg.url}/key/generate`, {})).json.key;
    const r1 = await postJSON(`${tg.url}/v1/chat/completions`, chat());
    const r2 = await postJSON(`${tg.url}/v1/chat/completions`, chat(), { key });
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r2.status, 200, r2.text);
    const cost = Number(r1.headers['x-litellm-response-cost']);
    assert.ok(cost > 0 && Number(r2.headers['x-litellm-response-cost']) === cost);
    const r3 = await postJSON(`${tg.url}/v1/chat/completions`, chat());
    checkRefusal(r3, 'budget_exceeded', /global \(the proxy's budget\): max_budget 0\.004000 USD/);
    assert.ok(Number(r3.headers['retry-after']) >= 1, 'a 1d budget resets: retry-after');
    checkRefusal(await postJSON(`${tg.url}/v1/chat/completions`, chat(), { key }), 'budget_exceeded', /global/);
    // the LiteLLM UI's views of it: /global/spend, /global/spend/keys, /global/spend/models
    let g;
    for (let i = 0; i < 100; i++) {
      g = await getJSON(`${tg.url}/global/spend`);
      if (g.status === 200 && g.json.spend >= 2 * cost - 1e-9) break;
      await sleep(50);
    }
    assert.equal(g.status, 200, g.text);
    assert.ok(Math.abs(g.json.spend - 2 * cost) < 1e-9, `two requests' spend: ${g.text}`);
    assert.equal(g.json.max_budget, 0.004);
    const keys = await getJSON(`${tg.url}/global/spend/keys?limit=5`);
    assert.equal(keys.status, 200, keys.text);
    assert.equal(keys.json.length, 2, 'the master key and the virtual key');
    assert.ok(keys.json.every((k) => Math.abs(k.total_spend - cost) < 1e-9), keys.text);
    const models = await getJSON(`${tg.url}/global/spend/models`);
    assert.deepEqual(models.json.map((m) => m.model), ['priced'], models.text);
    assert.equal((await getJSON(`${tg.url}/global/spend/nope`)).status, 404);
    assert.equal((await getJSON(`${tg.url}/global/spend`, { key })).status, 401, 'the master key only');
    // SIGTERM drains the spend journal into the store; the next start seeds the period from it
    await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY, key]);
    tg = await startTollgate({ config: config(), env });
    checkRefusal(await postJSON(`${tg.url}/v1/chat/completions`, chat()), 'budget_exceeded', /global/);
    await assertHealthyThenCleanExit(tg, assert);
  });

  test('kill -9 before the spend writer ran: the restart replays the journal before seeding the budget', async () => {
    const dir = { TOLLGATE_DATA_DIR: makeTempDir('tollgate-global-kill-') };
    // a writer that waits a minute: the spend stays in the journal only
    const slow = config().replace('general_settings:', 'tollgate_settings:\n  spend_writer_ms: 60000\ngeneral_settings:');
    tg = await startTollgate({ config: slow, env: dir });
    assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chat())).status, 200);
    assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chat())).status, 200);
    checkRefusal(await postJSON(`${tg.url}/v1/chat/completions`, chat()), 'budget_exceeded', /global/);
    const logs = await getJSON(`${tg.url}/spend/logs`);
    assert.equal(logs.status, 200, logs.text);
    assert.deepEqual(logs.json, [], 'nothing reached the store yet');
    await tg.stop('SIGKILL');
    tg = await startTollgate({ config: config(), env: dir });
    checkRefusal(await postJSON(`${tg.url}/v1/chat/completions`, chat()), 'budget_exceeded', /global/);
    const after = await getJSON(`${tg.url}/spend/logs`);
    assert.equal(after.json.length, 2, `the journal was replayed: ${after.text}`);
    await assertHealthyThenCleanExit(tg, assert);
  });

  test('a malformed budget_duration is a start-up error', async () => {
    await assert.rejects(
      startTollgate({ config: config().replace('budget_duration: 1d', 'budget_duration: soon'), env: { TOLLGATE_DATA_DIR: makeTempDir('tollgate-global-bad-') } }),
      /budget_duration/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Two instances sharing PostgreSQL and Redis.

const DB_BASE = process.env.TEST_DATABASE_URL;
const REDIS_BASE = process.env.TEST_REDIS_URL;
const SKIP_SHARED = !DB_BASE ? 'TEST_DATABASE_URL is not set' : !REDIS_BASE ? 'TEST_REDIS_URL is not set' : false;

describe('scopes shared by 2 instances (PostgreSQL + Redis)', { skip: SKIP_SHARED }, () => {
  const shared = CONFIG.replace('rpm: 2}', 'rpm: 5}');
  const inst = [];
  const secrets = [MASTER_KEY];
  before(async () => {
    const env = { DATABASE_URL: freshPgDatabase('scopes', DB_BASE), REDIS_URL: freshRedisDb(12, REDIS_BASE) };
    inst.push(await startTollgate({ config: shared, env: { ...env, TOLLGATE_DATA_DIR: makeTempDir('tg-scopes-a-') }, readyTimeoutMs: 20000 }));
    inst.push(await startTollgate({ config: shared, env: { ...env, TOLLGATE_DATA_DIR: makeTempDir('tg-scopes-b-') }, readyTimeoutMs: 20000 }));
  });
  after(async () => {
    for (const tg of inst) if (tg.alive()) await tg.stop('SIGKILL');
  });

  const burst = (n, fn) => Promise.all(Array.from({ length: n }, (_, i) => fn(i)));

  test('a deployment rpm of 5: a burst of 16 over both instances admits exactly 5', async () => {
    await roomInMinute();
    const rs = await burst(16, (i) => postJSON(`${inst[i % 2].url}/v1/chat/completions`, chat('limited')));
    const ok = rs.filter((r) => r.status === 200).length;
    assert.equal(ok, 5, rs.map((r) => r.status).join(','));
    for (const r of rs.filter((x) => x.status !== 200)) checkRefusal(r, 'rate_limit_exceeded', /model 'limited': rpm_limit 5/);
  });

  test("a key's model_rpm_limit of 3, created on one instance: a burst of 12 over both admits exactly 3", async () => {
    const g = await postJSON(`${inst[0].url}/key/generate`, { model_rpm_limit: { priced: 3 } });
    assert.equal(g.status, 200, g.text);
    const key = g.json.key;
    secrets.push(key);
    await roomInMinute();
    const rs = await burst(12, (i) => postJSON(`${inst[i % 2].url}/v1/chat/completions`, chat('priced'), { key }));
    const ok = rs.filter((r) => r.status === 200).length;
    assert.equal(ok, 3, rs.map((r) => `${r.status} ${r.status === 200 ? '' : r.text}`).join(','));
    for (const r of rs.filter((x) => x.status !== 200)) checkRefusal(r, 'rate_limit_exceeded', /key_model 'priced': rpm_limit 3/);
    const other = await postJSON(`${inst[1].url}/v1/chat/completions`, chat('priced-b'), { key });
    assert.equal(other.status, 200, other.text);
  });

  test('both instances exit cleanly', async () => {
    for (const tg of inst) await assertHealthyThenCleanExit(tg, assert, secrets);
  });
});
