// Virtual keys and the admin API through the real binary, on SQLite (the default: a data dir per
// instance) and on PostgreSQL (TEST_DATABASE_URL, which `make test` sets; skipped without it —
// each run gets a fresh database). Covers: /key/generate|info|update|list|block|unblock|
// regenerate|delete with LiteLLM's field names, a generated key used for chat (also through the
// official openai SDK), expired / blocked / deleted / unknown keys refused with 401, the model
// allow-list (403, and /v1/models filtered), non-admin keys refused on admin routes while a
// proxy_admin user's key is accepted, users/teams/customers/budgets/organizations round trips,
// and a key deleted on one instance refused by a second instance sharing the database within a
// second.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTollgate,
  request,
  postJSON,
  getJSON,
  sleep,
  MASTER_KEY,
  assertHealthyThenCleanExit,
  openAIErrorShapeProblem,
  freshPgDatabase,
} from '../lib/harness.mjs';

const { default: OpenAI } = await import(new URL('../e2e/node_modules/openai/index.mjs', import.meta.url));

const CONFIG = [
  'model_list:',
  '  - model_name: mock',
  '    litellm_params: {model: mock/mock-1}',
  '  - model_name: mock-b',
  '    litellm_params: {model: mock/mock-2}',
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

const chatBody = (model = 'mock') => ({ model, messages: [{ role: 'user', content: 'hello' }] });

const backends = [
  { name: 'sqlite', url: () => null },
  { name: 'postgres', url: () => freshPgDatabase('keys'), skip: !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set' },
];

for (const be of backends) {
  describe(`virtual keys on ${be.name}`, { skip: be.skip }, () => {
    let tg;
    let dbUrl;
    const env = {};
    const admin = (path, body) => postJSON(`${tg.url}${path}`, body);

    before(async () => {
      dbUrl = be.url();
      if (dbUrl) env.DATABASE_URL = dbUrl;
      tg = await startTollgate({ config: CONFIG, env });
    });
    after(async () => {
      if (tg && tg.alive()) await tg.stop('SIGKILL');
    });

    test('readiness reports the database', async () => {
      const r = await getJSON(`${tg.url}/health/readiness`, { key: null });
      assert.equal(r.status, 200);
      assert.equal(r.json.db, 'connected');
    });

    test('generate a key and use it; the store keeps only its hash', async () => {
      const g = await admin('/key/generate', {
        models: ['mock'],
        max_budget: 1.25,
        soft_budget: 0.5,
        budget_duration: '1d',
        key_alias: `alias-${be.name}`,
        metadata: { team: 'x' },
        rpm_limit: 100,
        tpm_limit: 1000,
        max_parallel_requests: 5,
        user_id: 'user-1',
      });
      assert.equal(g.status, 200, g.text);
      const k = g.json;
      assert.match(k.key, /^sk-[A-Za-z0-9_-]{22}$/);
      assert.match(k.token, /^[0-9a-f]{64}$/);
      assert.notEqual(k.token, k.key);
      assert.equal(k.key_name, `sk-...${k.key.slice(-4)}`);
      assert.deepEqual(k.models, ['mock']);
      assert.equal(k.max_budget, 1.25);
      assert.equal(k.soft_budget, 0.5);
      assert.equal(k.budget_duration, '1d');
      assert.ok(Date.parse(k.budget_reset_at) > Date.now() + 23 * 3600e3, k.budget_reset_at);
      assert.equal(k.key_alias, `alias-${be.name}`);
      assert.deepEqual(k.metadata, { team: 'x' });
      assert.equal(k.rpm_limit, 100);
      assert.equal(k.tpm_limit, 1000);
      assert.equal(k.max_parallel_requests, 5);
      assert.equal(k.user_id, 'user-1');
      assert.equal(k.expires, null);
      assert.equal(k.blocked, false);
      assert.equal(k.spend, 0);

      const c = await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key: k.key });
      assert.equal(c.status, 200, c.text);
      assert.equal(c.json.object, 'chat.completion');

      const info = await getJSON(`${tg.url}/key/info?key=${k.key}`);
      assert.equal(info.status, 200, info.text);
      assert.equal(info.json.key, k.key);
      assert.equal(info.json.info.token, k.token);
      assert.equal(info.json.info.max_budget, 1.25);
      assert.ok(!info.text.includes(k.key.slice(3)) || info.json.key === k.key);
    });

    test('the official openai SDK works with a generated key', async () => {
      const g = await admin('/key/generate', {});
      const client = new OpenAI({ apiKey: g.json.key, baseURL: `${tg.url}/v1` });
      const r = await client.chat.completions.create(chatBody());
      assert.equal(r.object, 'chat.completion');
      assert.ok(r.choices[0].message.content.length > 0);
      const models = await client.models.list();
      assert.deepEqual(models.data.map((m) => m.id).sort(), ['mock', 'mock-b']);
      const bad = new OpenAI({ apiKey: 'sk-not-a-key-at-all-xxxxx', baseURL: `${tg.url}/v1`, maxRetries: 0 });
      await assert.rejects(bad.chat.completions.create(chatBody()), (e) => e.status === 401);
    });

    test('allow-list: other models 403, /v1/models filtered; embeddings and messages too', async () => {
      const g = await admin('/key/generate', { models: ['mock'] });
      const key = g.json.key;
      const c = await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock-b'), { key });
      assert.equal(c.status, 403, c.text);
      assert.equal(openAIErrorShapeProblem(c.json), null);
      assert.match(c.json.error.message, /not allowed to access model/);
      const m = await getJSON(`${tg.url}/v1/models`, { key });
      assert.equal(m.status, 200);
      assert.deepEqual(m.json.data.map((x) => x.id), ['mock']);
      const all = await getJSON(`${tg.url}/v1/models`);
      assert.deepEqual(all.json.data.map((x) => x.id).sort(), ['mock', 'mock-b']);
      const msg = await postJSON(
        `${tg.url}/v1/messages`,
        { model: 'mock-b', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] },
        { key },
      );
      assert.equal(msg.status, 403, msg.text);
      const ok = await postJSON(
        `${tg.url}/v1/messages`,
        { model: 'mock', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] },
        { key },
      );
      assert.equal(ok.status, 200, ok.text);
    });

    test("model aliases: the key's and its team's route the asked name to another model group", async () => {
      const key = (await admin('/key/generate', { aliases: { fast: 'mock-b' }, models: ['fast', 'mock'] })).json.key;
      const r = await postJSON(`${tg.url}/v1/chat/completions`, chatBody('fast'), { key });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.model, 'mock-2', 'served by the mock-b group');
      const plain = await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock'), { key });
      assert.equal(plain.json.model, 'mock-1', 'other names are untouched');
      const other = await postJSON(`${tg.url}/v1/chat/completions`, chatBody('fast'));
      assert.equal(other.status, 404, 'the alias is the key\'s own, not the proxy\'s');

      const team = (await admin('/team/new', { team_alias: 'aliased', model_aliases: { quick: 'mock-b', fast: 'mock' } })).json.team_id;
      const tk = (await admin('/key/generate', { team_id: team, aliases: { fast: 'mock-b' } })).json.key;
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('quick'), { key: tk })).json.model, 'mock-2');
      // LiteLLM's order: the team's map first, then the key's on what the team's gave (fast → mock)
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('fast'), { key: tk })).json.model, 'mock-1');
    });

    test('missing, unknown, blocked, expired keys are refused with 401', async () => {
      const none = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', body: chatBody() });
      assert.equal(none.status, 401);
      const unknown = await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key: 'sk-AAAAAAAAAAAAAAAAAAAAAA' });
      assert.equal(unknown.status, 401);
      assert.match(unknown.json.error.message, /Invalid proxy server token/);

      const g = await admin('/key/generate', {});
      const key = g.json.key;
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key })).status, 200);
      const b = await admin('/key/block', { key });
      assert.equal(b.status, 200, b.text);
      assert.equal(b.json.blocked, true);
      const refused = await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key });
      assert.equal(refused.status, 401, 'blocked takes effect at once on this instance');
      assert.match(refused.json.error.message, /Key is blocked/);
      const u = await admin('/key/unblock', { key });
      assert.equal(u.json.blocked, false);
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key })).status, 200);

      const e = await admin('/key/generate', { duration: '1s' });
      assert.ok(e.json.expires, 'expires is set');
      await sleep(1200);
      const exp = await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key: e.json.key });
      assert.equal(exp.status, 401, exp.text);
      assert.match(exp.json.error.message, /Expired Key/);
      const bad = await admin('/key/generate', { duration: '1 day' });
      assert.equal(bad.status, 400);
    });

    test('update, list, regenerate, delete', async () => {
      const g = await admin('/key/generate', { key_alias: `upd-${be.name}`, user_id: 'lister' });
      const { key, token } = g.json;
      const up = await admin('/key/update', { key, max_budget: 10, models: ['mock-b'], metadata: { a: 1 } });
      assert.equal(up.status, 200, up.text);
      assert.equal(up.json.max_budget, 10);
      assert.deepEqual(up.json.models, ['mock-b']);
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock'), { key })).status, 403);
      const missing = await admin('/key/update', { key: 'sk-nonexistent-key-xxxxxx', max_budget: 1 });
      assert.equal(missing.status, 404);

      const list = await getJSON(`${tg.url}/key/list?user_id=lister`);
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.json.keys, [token]);
      assert.equal(list.json.total_count, 1);
      assert.equal(list.json.current_page, 1);
      assert.equal(list.json.total_pages, 1);
      const full = await getJSON(`${tg.url}/key/list?return_full_object=true&size=2&page=1`);
      assert.ok(full.json.keys.length <= 2 && typeof full.json.keys[0] === 'object');
      assert.ok(full.json.total_count >= 3);

      const re = await admin('/key/regenerate', { key });
      assert.equal(re.status, 200, re.text);
      assert.notEqual(re.json.key, key);
      assert.equal(re.json.key_alias, `upd-${be.name}`);
      assert.equal(re.json.max_budget, 10, 'settings carry over');
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock-b'), { key })).status, 401);
      assert.equal(
        (await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock-b'), { key: re.json.key })).status,
        200,
      );

      const d = await admin('/key/delete', { keys: [re.json.key] });
      assert.equal(d.status, 200, d.text);
      assert.deepEqual(d.json.deleted_keys, [re.json.key]);
      assert.equal(
        (await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock-b'), { key: re.json.key })).status,
        401,
      );
      assert.equal((await getJSON(`${tg.url}/key/info?key=${re.json.key}`)).status, 404);
      const g2 = await admin('/key/generate', { key_alias: `del-alias-${be.name}` });
      const d2 = await admin('/key/delete', { key_aliases: [`del-alias-${be.name}`] });
      assert.equal(d2.status, 200, d2.text);
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key: g2.json.key })).status, 401);
      const dup1 = await admin('/key/generate', { key_alias: 'dup' });
      assert.equal(dup1.status, 200);
      const dup2 = await admin('/key/generate', { key_alias: 'dup' });
      assert.equal(dup2.status, 400, dup2.text);
    });

    test('admin routes: non-admin keys refused, a proxy_admin user key accepted', async () => {
      const g = await admin('/key/generate', {});
      const r = await postJSON(`${tg.url}/key/generate`, {}, { key: g.json.key });
      assert.equal(r.status, 401, r.text);
      assert.match(r.json.error.message, /Only proxy admin/);
      assert.equal((await postJSON(`${tg.url}/key/generate`, {}, { key: null })).status, 401);
      const u = await admin('/user/new', { user_id: `boss-${be.name}`, user_role: 'proxy_admin' });
      assert.equal(u.status, 200, u.text);
      assert.match(u.json.key, /^sk-/);
      const r2 = await postJSON(`${tg.url}/key/generate`, { models: ['mock'] }, { key: u.json.key });
      assert.equal(r2.status, 200, r2.text);
    });

    test('users, teams, customers, budgets, organizations round-trip', async () => {
      const u = await admin('/user/new', {
        user_id: 'u-rt',
        user_email: 'a@example.com',
        user_role: 'internal_user',
        max_budget: 3.5,
        budget_duration: '7d',
        auto_create_key: false,
      });
      assert.equal(u.status, 200, u.text);
      assert.equal(u.json.user_id, 'u-rt');
      assert.equal(u.json.max_budget, 3.5);
      assert.equal(u.json.key, undefined);
      const ui = await getJSON(`${tg.url}/user/info?user_id=u-rt`);
      assert.equal(ui.status, 200, ui.text);
      assert.equal(ui.json.user_info.user_email, 'a@example.com');
      assert.deepEqual(ui.json.keys, []);
      const uu = await admin('/user/update', { user_id: 'u-rt', max_budget: 4 });
      assert.equal(uu.json.max_budget, 4);

      const t = await admin('/team/new', { team_alias: 'blue', models: ['mock'], max_budget: 20, rpm_limit: 9 });
      assert.equal(t.status, 200, t.text);
      assert.ok(t.json.team_id);
      assert.equal(t.json.team_alias, 'blue');
      assert.equal(t.json.max_budget, 20);
      const ma = await admin('/team/member_add', { team_id: t.json.team_id, member: { role: 'user', user_id: 'u-rt' } });
      assert.equal(ma.status, 200, ma.text);
      assert.deepEqual(ma.json.members_with_roles, [{ role: 'user', user_id: 'u-rt' }]);
      const ti = await getJSON(`${tg.url}/team/info?team_id=${t.json.team_id}`);
      assert.equal(ti.status, 200, ti.text);
      assert.equal(ti.json.team_info.team_alias, 'blue');
      assert.equal(ti.json.team_memberships.length, 1);
      const ui2 = await getJSON(`${tg.url}/user/info?user_id=u-rt`);
      assert.deepEqual(ui2.json.user_info.teams, [t.json.team_id]);

      // a team key: the team's allow-list applies; blocking the team refuses the key
      const tk = await admin('/key/generate', { team_id: t.json.team_id });
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock'), { key: tk.json.key })).status, 200);
      assert.equal(
        (await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock-b'), { key: tk.json.key })).status,
        403,
      );
      await admin('/team/update', { team_id: t.json.team_id, blocked: true });
      assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('mock'), { key: tk.json.key })).status, 401);

      const cu = await admin('/customer/new', { user_id: 'end-1', alias: 'E', max_budget: 2, blocked: false });
      assert.equal(cu.status, 200, cu.text);
      assert.equal(cu.json.user_id, 'end-1');
      assert.equal(cu.json.litellm_budget_table.max_budget, 2);
      const ci = await getJSON(`${tg.url}/customer/info?end_user_id=end-1`);
      assert.equal(ci.status, 200, ci.text);
      assert.equal(ci.json.alias, 'E');
      assert.equal(ci.json.litellm_budget_table.max_budget, 2);
      const cup = await admin('/customer/update', { user_id: 'end-1', max_budget: 5 });
      assert.equal(cup.json.litellm_budget_table.max_budget, 5);
      const cd = await admin('/customer/delete', { user_ids: ['end-1'] });
      assert.equal(cd.status, 200, cd.text);
      assert.equal((await getJSON(`${tg.url}/customer/info?end_user_id=end-1`)).status, 404);

      const bn = await admin('/budget/new', { budget_id: 'b-1', max_budget: 0.000001, rpm_limit: 3, budget_duration: '1mo' });
      assert.equal(bn.status, 200, bn.text);
      assert.equal(bn.json.max_budget, 0.000001);
      const bi = await admin('/budget/info', { budgets: ['b-1'] });
      assert.equal(bi.status, 200, bi.text);
      assert.equal(bi.json[0].rpm_limit, 3);

      const on = await admin('/organization/new', { organization_alias: 'acme', max_budget: 100, models: ['mock'] });
      assert.equal(on.status, 200, on.text);
      assert.ok(on.json.organization_id);
      assert.equal(on.json.litellm_budget_table.max_budget, 100);
      const oi = await getJSON(`${tg.url}/organization/info?organization_id=${on.json.organization_id}`);
      assert.equal(oi.status, 200, oi.text);
      assert.equal(oi.json.organization_alias, 'acme');

      const td = await admin('/team/delete', { team_ids: [t.json.team_id] });
      assert.equal(td.status, 200, td.text);
      const ud = await admin('/user/delete', { user_ids: ['u-rt'] });
      assert.equal(ud.status, 200, ud.text);
      assert.equal((await getJSON(`${tg.url}/user/info?user_id=u-rt`)).status, 404);
      const bad = await admin('/user/new', { max_budget: -1 });
      assert.equal(bad.status, 400);
    });

    test('a second instance on the same database refuses a deleted key within a second', { skip: be.name === 'sqlite' && 'SQLite is one instance per data dir' }, async () => {
      const tg2 = await startTollgate({ config: CONFIG, env });
      try {
        const g = await admin('/key/generate', {});
        const key = g.json.key;
        // both instances have it cached
        assert.equal((await postJSON(`${tg2.url}/v1/chat/completions`, chatBody(), { key })).status, 200);
        assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key })).status, 200);
        const d = await admin('/key/delete', { keys: [key] });
        assert.equal(d.status, 200);
        const t0 = Date.now();
        let status = 200;
        while (Date.now() - t0 < 1000) {
          status = (await postJSON(`${tg2.url}/v1/chat/completions`, chatBody(), { key })).status;
          if (status === 401) break;
          await sleep(20);
        }
        assert.equal(status, 401, `still accepted ${Date.now() - t0} ms after the delete`);
        // blocks made on the second instance reach the first
        const g2 = await postJSON(`${tg2.url}/key/generate`, {});
        assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key: g2.json.key })).status, 200);
        await postJSON(`${tg2.url}/key/block`, { key: g2.json.key });
        await sleep(1000);
        assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody(), { key: g2.json.key })).status, 401);
      } finally {
        await assertHealthyThenCleanExit(tg2, assert, [MASTER_KEY]);
      }
    });

    test("changes to a key's user, team membership and team reach a second instance within a second", { skip: be.name === 'sqlite' && 'SQLite is one instance per data dir' }, async () => {
      // one worker: every request meets the same cache, so only an invalidation can make it reload
      const tg2 = await startTollgate({ config: CONFIG, env, workers: 1 });
      try {
        const call2 = async (key) => (await postJSON(`${tg2.url}/v1/chat/completions`, chatBody(), { key })).status;
        const within = async (key, want, what) => {
          const t0 = Date.now();
          let status;
          do {
            status = await call2(key);
            if (status === want) return;
            await sleep(20);
          } while (Date.now() - t0 < 1000);
          assert.equal(status, want, `${what}: still ${status} ${Date.now() - t0} ms later`);
        };
        assert.equal((await admin('/user/new', { user_id: 'u-inv' })).status, 200);
        const team = (await admin('/team/new', { team_alias: 'inv' })).json.team_id;
        assert.equal((await admin('/team/member_add', { team_id: team, member: { role: 'user', user_id: 'u-inv' } })).status, 200);
        const a = (await admin('/key/generate', { user_id: 'u-inv', team_id: team })).json.key;
        const b = (await admin('/key/generate', { user_id: 'u-other' })).json.key;
        await sleep(600); // the second instance's poll has seen the changes above before it caches
        assert.equal(await call2(a), 200);
        assert.equal(await call2(b), 200);

        assert.equal((await admin('/user/update', { user_id: 'u-inv', rpm_limit: 0 })).status, 200);
        await within(a, 429, 'user rpm_limit 0');
        assert.equal(await call2(b), 200, "another user's key is untouched");
        assert.equal((await admin('/user/update', { user_id: 'u-inv', rpm_limit: null })).status, 200);
        await within(a, 200, 'user limit cleared');

        const mu = await admin('/team/member_update', { team_id: team, user_id: 'u-inv', rpm_limit: 0 });
        assert.equal(mu.status, 200, mu.text);
        await within(a, 429, 'member rpm_limit 0');
        assert.equal((await admin('/team/member_update', { team_id: team, user_id: 'u-inv', rpm_limit: null })).status, 200);
        await within(a, 200, 'member limit cleared');

        assert.equal((await admin('/team/update', { team_id: team, blocked: true })).status, 200);
        await within(a, 401, 'team blocked');
        assert.equal(await call2(b), 200, 'a key outside the team is untouched');
      } finally {
        await assertHealthyThenCleanExit(tg2, assert, [MASTER_KEY]);
      }
    });

    test('no key or secret in the logs; clean exit', async () => {
      await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY]);
    });
  });
}

describe('config model aliases (litellm_settings.model_alias_map, router_settings.model_group_alias)', () => {
  let tg;
  before(async () => {
    tg = await startTollgate({
      config: [
        CONFIG,
        'litellm_settings:',
        '  model_alias_map: {gpt-3.5: mock-b}',
        'router_settings:',
        '  model_group_alias: {gpt-4: {model: mock, hidden: true}, claude: mock-b}',
      ].join('\n'),
    });
  });
  after(async () => {
    if (tg && tg.alive()) await tg.stop('SIGKILL');
  });

  test('an aliased name is served by the group it names', async () => {
    const cases = [
      ['gpt-3.5', 'mock-2'],
      ['gpt-4', 'mock-1'],
      ['claude', 'mock-2'],
      ['mock', 'mock-1'],
    ];
    for (const [asked, served] of cases) {
      const r = await postJSON(`${tg.url}/v1/chat/completions`, chatBody(asked));
      assert.equal(r.status, 200, `${asked}: ${r.text}`);
      assert.equal(r.json.model, served, asked);
    }
    assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chatBody('gpt-5'))).status, 404);
    await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY]);
  });
});
