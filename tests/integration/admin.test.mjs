// The LiteLLM admin API beyond the round trips of keys.test.mjs, through the real binary and a
// real store (SQLite, and PostgreSQL when TEST_DATABASE_URL is set, as `make test` does):
//   - blocked customers: a customer made blocked (/customer/new, /customer/update,
//     /customer/block, also for an id never seen before, and the /end_user/* aliases) is refused
//     on every model route with LiteLLM's 400 "User blocked from making LLM API Calls. User=<id>",
//     for the master key and virtual keys alike; /customer/unblock lets it through again;
//   - a block made on one instance refuses the customer on a second instance sharing the
//     PostgreSQL database within a second, and an unblock there reaches the first one;
//   - /customer/list, /customer/delete (LiteLLM's answer and its 404 naming missing ids),
//     /customer/update on a missing id, duplicate /customer/new, inline budget fields next to a
//     shared budget_id (the shared tier is left alone);
//   - keys: /key/<key>/regenerate (the path form), /key/health, and what a non-admin key may see:
//     /key/info for itself (no key given) and its own user's keys but 403 for another user's,
//     /key/list limited to its user (403 for another user), /user/info for its own user (403
//     otherwise), /team/info for its own team; a proxy_admin_viewer key may read but not write.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTollgate,
  postJSON,
  getJSON,
  sleep,
  MASTER_KEY,
  assertHealthyThenCleanExit,
  openAIErrorShapeProblem,
  freshPgDatabase,
} from '../lib/harness.mjs';

const CONFIG = [
  'model_list:',
  '  - model_name: mock',
  '    litellm_params: {model: mock/mock-1}',
  '  - model_name: embed',
  '    litellm_params: {model: mock/embed-1}',
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

const chat = (user) => ({
  model: 'mock',
  messages: [{ role: 'user', content: 'hi' }],
  ...(user !== undefined ? { user } : {}),
});

const backends = [
  { name: 'sqlite', url: () => null },
  { name: 'postgres', url: () => freshPgDatabase('admin'), skip: !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set', shared: true },
];

const blockedMessage = (id) => `User blocked from making LLM API Calls. User=${id}`;

function assertBlocked(r, id) {
  assert.equal(r.status, 400, r.text);
  assert.equal(openAIErrorShapeProblem(r.json), null, r.text);
  assert.equal(r.json.error.message, blockedMessage(id));
  assert.equal(r.json.error.type, 'invalid_request_error');
}

for (const be of backends) {
  describe(`admin API on ${be.name}`, { skip: be.skip }, () => {
    let tg;
    const env = {};
    const post = (path, body, key = MASTER_KEY) => postJSON(`${tg.url}${path}`, body, { key });
    const get = (path, key = MASTER_KEY) => getJSON(`${tg.url}${path}`, { key });
    const ok = async (path, body) => {
      const r = await post(path, body);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      return r.json;
    };
    const call = (body, key = MASTER_KEY) => post('/v1/chat/completions', body, key);

    before(async () => {
      const url = be.url();
      if (url) env.DATABASE_URL = url;
      tg = await startTollgate({ config: CONFIG, env });
    });
    after(async () => {
      if (tg && tg.alive()) await tg.stop('SIGKILL');
    });

    test('a blocked customer is refused on every model route, for every caller', async () => {
      const c = await ok('/customer/new', { user_id: 'cust-blocked', blocked: true });
      assert.equal(c.blocked, true);
      const key = (await ok('/key/generate', {})).key;
      assertBlocked(await call(chat('cust-blocked')), 'cust-blocked');
      assertBlocked(await call(chat('cust-blocked'), key), 'cust-blocked');
      const streamed = await call({ ...chat('cust-blocked'), stream: true });
      assertBlocked(streamed, 'cust-blocked');
      assertBlocked(await post('/v1/embeddings', { model: 'embed', input: 'x', user: 'cust-blocked' }), 'cust-blocked');
      assertBlocked(await post('/embeddings', { model: 'embed', input: 'x', user: 'cust-blocked' }, key), 'cust-blocked');
      const m = await post('/v1/messages', {
        model: 'mock',
        max_tokens: 8,
        messages: [{ role: 'user', content: 'x' }],
        metadata: { user_id: 'cust-blocked' },
      });
      assert.equal(m.status, 400, m.text);
      assert.equal(m.json.type, 'error', m.text); // Anthropic's error shape on its surface
      assert.equal(m.json.error.message, blockedMessage('cust-blocked'));
      // others are untouched
      assert.equal((await call(chat('cust-other'))).status, 200);
      assert.equal((await call(chat())).status, 200);

      // unblocking through /customer/update applies at once
      const up = await ok('/customer/update', { user_id: 'cust-blocked', blocked: false });
      assert.equal(up.blocked, false);
      assert.equal((await call(chat('cust-blocked'), key)).status, 200);
      const up2 = await ok('/customer/update', { user_id: 'cust-blocked', blocked: true });
      assert.equal(up2.blocked, true);
      assertBlocked(await call(chat('cust-blocked'), key), 'cust-blocked');
    });

    test('/customer/block and /customer/unblock (and the /end_user aliases)', async () => {
      // a user seen before (cached as "no limits" on the workers) and one never seen
      assert.equal((await call(chat('walk-in'))).status, 200);
      const b = await ok('/customer/block', { user_ids: ['walk-in', 'never-seen'] });
      assert.deepEqual(b.blocked_users.map((u) => [u.user_id, u.blocked]), [
        ['walk-in', true],
        ['never-seen', true],
      ]);
      assertBlocked(await call(chat('walk-in')), 'walk-in');
      assertBlocked(await call(chat('never-seen')), 'never-seen');
      const info = await get('/customer/info?end_user_id=never-seen');
      assert.equal(info.status, 200, info.text);
      assert.equal(info.json.blocked, true);

      const u = await ok('/customer/unblock', { user_ids: ['walk-in'] });
      assert.deepEqual(u.unblocked_users.map((x) => [x.user_id, x.blocked]), [['walk-in', false]]);
      assert.equal((await call(chat('walk-in'))).status, 200);
      assertBlocked(await call(chat('never-seen')), 'never-seen');

      await ok('/end_user/block', { user_ids: ['walk-in'] });
      assertBlocked(await call(chat('walk-in')), 'walk-in');
      await ok('/end_user/unblock', { user_ids: ['walk-in', 'never-seen'] });
      assert.equal((await call(chat('walk-in'))).status, 200);
      assert.equal((await call(chat('never-seen'))).status, 200);

      assert.equal((await post('/customer/block', {})).status, 400);
      assert.equal((await post('/customer/block', { user_ids: [] })).status, 400);
      assert.equal((await post('/customer/block', { user_ids: [42] })).status, 400);
      const key = (await ok('/key/generate', {})).key;
      const na = await post('/customer/block', { user_ids: ['walk-in'] }, key);
      assert.equal(na.status, 401, na.text);
      assert.equal((await call(chat('walk-in'))).status, 200);
    });

    test('customer list, delete, update and new answer as LiteLLM does', async () => {
      await ok('/budget/new', { budget_id: `tier-${be.name}`, max_budget: 7 });
      const c = await ok('/end_user/new', {
        user_id: 'cust-inline',
        budget_id: `tier-${be.name}`,
        max_budget: 1.5,
        budget_duration: '1d',
        rpm_limit: 10,
        tpm_limit: 1000,
        max_parallel_requests: 2,
      });
      assert.notEqual(c.budget_id, `tier-${be.name}`, 'inline budget fields make a budget of its own');
      assert.equal(c.litellm_budget_table.max_budget, 1.5);
      assert.equal(c.litellm_budget_table.budget_duration, '1d');
      assert.equal(c.litellm_budget_table.rpm_limit, 10);
      assert.equal(c.litellm_budget_table.tpm_limit, 1000);
      assert.equal(c.litellm_budget_table.max_parallel_requests, 2);
      const tier = await ok('/budget/info', { budgets: [`tier-${be.name}`] });
      assert.equal(tier[0].max_budget, 7, 'the shared tier is unchanged');
      await ok('/customer/new', { user_id: 'cust-tier', budget_id: `tier-${be.name}` });

      const dm = await post('/customer/new', { user_id: 'cust-dm', default_model: 'no-such-model' });
      assert.equal(dm.status, 422, dm.text);
      assert.match(dm.json.error.message, /^Default Model not on proxy\. .*Default_model=no-such-model/);
      assert.equal((await ok('/customer/new', { user_id: 'cust-dm', default_model: 'mock' })).default_model, 'mock');

      const dup = await post('/customer/new', { user_id: 'cust-tier' });
      assert.equal(dup.status, 400, dup.text);
      assert.equal(dup.json.error.message, 'Customer already exists, passed user_id=cust-tier. Please pass a new user_id.');

      for (const path of ['/customer/list', '/end_user/list']) {
        const l = await get(path);
        assert.equal(l.status, 200, l.text);
        assert.ok(Array.isArray(l.json));
        const byId = Object.fromEntries(l.json.map((x) => [x.user_id, x]));
        assert.equal(byId['cust-inline'].litellm_budget_table.max_budget, 1.5);
        assert.equal(byId['cust-tier'].litellm_budget_table.max_budget, 7);
        assert.equal(byId['cust-tier'].litellm_budget_table.budget_id, `tier-${be.name}`);
      }
      const ei = await get('/end_user/info?end_user_id=cust-tier');
      assert.equal(ei.status, 200, ei.text);
      assert.equal(ei.json.litellm_budget_table.max_budget, 7);

      const missingUpdate = await post('/end_user/update', { user_id: 'nobody-here', alias: 'x' });
      assert.equal(missingUpdate.status, 404, missingUpdate.text);
      assert.equal(missingUpdate.json.error.message, 'End User Id=nobody-here does not exist in db');

      const missing = await post('/customer/delete', { user_ids: ['cust-tier', 'ghost-1', 'ghost-2'] });
      assert.equal(missing.status, 404, missing.text);
      assert.equal(missing.json.error.message, 'End User Id(s)=ghost-1, ghost-2 do not exist in db');
      assert.equal((await get('/customer/info?end_user_id=cust-tier')).status, 200, 'nothing was deleted');
      const d = await ok('/end_user/delete', { user_ids: ['cust-tier', 'cust-inline'] });
      assert.deepEqual(d, {
        deleted_customers: 2,
        message: "Successfully deleted customers with ids: ['cust-tier', 'cust-inline']",
      });
      assert.equal((await get('/customer/info?end_user_id=cust-inline')).status, 404);

      const key = (await ok('/key/generate', {})).key;
      assert.equal((await get('/customer/list', key)).status, 401);
    });

    test('a customer blocked on one instance is refused by another within a second', { skip: !be.shared && 'SQLite is one instance per data dir' }, async () => {
      const tg2 = await startTollgate({ config: CONFIG, env });
      try {
        const at = (t, user) => postJSON(`${t.url}/v1/chat/completions`, chat(user));
        // both instances have the customer cached as unblocked
        await ok('/customer/new', { user_id: 'roaming' });
        assert.equal((await at(tg2, 'roaming')).status, 200);
        assert.equal((await at(tg, 'roaming')).status, 200);
        await ok('/customer/block', { user_ids: ['roaming'] });
        const t0 = Date.now();
        let r;
        while (Date.now() - t0 < 3000) {
          r = await at(tg2, 'roaming');
          if (r.status !== 200) break;
          await sleep(20);
        }
        const took = Date.now() - t0;
        assertBlocked(r, 'roaming');
        assert.ok(took < 1000, `the block took ${took} ms to reach the second instance`);

        // an unblock made on the second instance reaches the first
        const u = await postJSON(`${tg2.url}/customer/unblock`, { user_ids: ['roaming'] });
        assert.equal(u.status, 200, u.text);
        const t1 = Date.now();
        while (Date.now() - t1 < 3000) {
          r = await at(tg, 'roaming');
          if (r.status === 200) break;
          await sleep(20);
        }
        assert.equal(r.status, 200, r.text);
        assert.ok(Date.now() - t1 < 1000, `the unblock took ${Date.now() - t1} ms`);
      } finally {
        await assertHealthyThenCleanExit(tg2, assert, [MASTER_KEY]);
      }
    });

    test('/key/<key>/regenerate, the path form, and /key/health', async () => {
      const g = await ok('/key/generate', { key_alias: `path-regen-${be.name}`, max_budget: 3 });
      const r = await post(`/key/${g.key}/regenerate`, { max_budget: 4 });
      assert.equal(r.status, 200, r.text);
      assert.match(r.json.key, /^sk-[A-Za-z0-9_-]{22}$/);
      assert.notEqual(r.json.key, g.key);
      assert.equal(r.json.key_alias, `path-regen-${be.name}`);
      assert.equal(r.json.max_budget, 4);
      assert.match(r.json.token_id, /^[0-9a-f]{64}$/);
      assert.equal((await call(chat(), g.key)).status, 401);
      assert.equal((await call(chat(), r.json.key)).status, 200);
      // by its hash too
      const r2 = await post(`/key/${r.json.token_id}/regenerate`, {});
      assert.equal(r2.status, 200, r2.text);
      assert.equal((await call(chat(), r.json.key)).status, 401);
      assert.equal((await call(chat(), r2.json.key)).status, 200);
      assert.equal((await post('/key/sk-AAAAAAAAAAAAAAAAAAAAAA/regenerate', {})).status, 404);
      assert.equal((await post('/key/a/b/regenerate', {})).status, 404);
      assert.equal((await post(`/key/${r2.json.key}/rotate`, {})).status, 404);
      assert.equal((await post('/key/info/extra', {})).status, 404);
      // a non-admin key cannot regenerate keys
      assert.equal((await post(`/key/${r2.json.key}/regenerate`, {}, r2.json.key)).status, 401);

      for (const key of [MASTER_KEY, r2.json.key]) {
        const h = await post('/key/health', {}, key);
        assert.equal(h.status, 200, h.text);
        assert.deepEqual(h.json, { key: 'healthy', logging_callbacks: null });
      }
      assert.equal((await post('/key/health', {}, null)).status, 401);
    });

    test('what a non-admin key may read: its own key, user and team', async () => {
      const team = await ok('/team/new', { team_alias: `t-${be.name}` });
      const otherTeam = await ok('/team/new', { team_alias: `t2-${be.name}` });
      await ok('/user/new', { user_id: `alice-${be.name}`, auto_create_key: false });
      await ok('/user/new', { user_id: `bob-${be.name}`, auto_create_key: false });
      const alice = `alice-${be.name}`;
      const bob = `bob-${be.name}`;
      const a1 = await ok('/key/generate', { user_id: alice, team_id: team.team_id });
      await sleep(5); // distinct created_at milliseconds, for the order check below
      const a2 = await ok('/key/generate', { user_id: alice });
      await sleep(5);
      const b1 = await ok('/key/generate', { user_id: bob });
      await sleep(5);
      const loner = await ok('/key/generate', {});

      // /key/info: no key means the caller's own; its own user's keys; nobody else's
      const self = await get('/key/info', a1.key);
      assert.equal(self.status, 200, self.text);
      assert.equal(self.json.info.user_id, alice);
      assert.equal(self.json.info.token, a1.token);
      const own = await get(`/key/info?key=${a1.key}`, a1.key);
      assert.equal(own.status, 200, own.text);
      assert.equal(own.json.key, a1.key);
      const sibling = await get(`/key/info?key=${a2.token}`, a1.key);
      assert.equal(sibling.status, 200, sibling.text);
      const foreign = await get(`/key/info?key=${b1.key}`, a1.key);
      assert.equal(foreign.status, 403, foreign.text);
      assert.equal(openAIErrorShapeProblem(foreign.json), null);
      assert.equal(foreign.json.error.message, "You are not allowed to access this key's info. Your role=None");
      assert.equal((await get(`/key/info?key=${a1.key}`, loner.key)).status, 403);
      assert.equal((await get('/key/info', loner.key)).status, 200);

      // /key/list: only the caller's user's keys
      const mine = await get('/key/list', a1.key);
      assert.equal(mine.status, 200, mine.text);
      assert.deepEqual(mine.json.keys.sort(), [a1.token, a2.token].sort());
      assert.equal(mine.json.total_count, 2);
      const mineFull = await get(`/key/list?user_id=${alice}&return_full_object=true`, a2.key);
      assert.equal(mineFull.status, 200, mineFull.text);
      assert.ok(mineFull.json.keys.every((k) => k.user_id === alice));
      const theirs = await get(`/key/list?user_id=${bob}`, a1.key);
      assert.equal(theirs.status, 403, theirs.text);
      assert.equal(theirs.json.error.message, "You are not authorized to check another user's keys");
      const notMyTeam = await get(`/key/list?team_id=${otherTeam.team_id}`, a1.key);
      assert.equal(notMyTeam.status, 403, notMyTeam.text);
      const noUser = await get('/key/list', loner.key);
      assert.equal(noUser.status, 403, noUser.text);
      assert.match(noUser.json.error.message, /No 'user_id' is associated with your API key/);
      // the master key still sees everything, newest first
      const all = await get('/key/list?size=100');
      assert.ok(all.json.total_count >= 4);
      assert.deepEqual(all.json.keys.slice(0, 4), [loner.token, b1.token, a2.token, a1.token]);

      // /user/info: the caller's own user
      const ui = await get('/user/info', a1.key);
      assert.equal(ui.status, 200, ui.text);
      assert.equal(ui.json.user_id, alice);
      assert.deepEqual(ui.json.keys.map((k) => k.token).sort(), [a1.token, a2.token].sort());
      assert.equal((await get(`/user/info?user_id=${alice}`, a2.key)).status, 200);
      const uiOther = await get(`/user/info?user_id=${bob}`, a1.key);
      assert.equal(uiOther.status, 403, uiOther.text);
      assert.equal(uiOther.json.error.message, `key not allowed to access this user's info. user_id=${bob}, key's user_id=${alice}`);
      assert.equal((await get('/user/info', loner.key)).status, 403);

      // /team/info: the key's own team
      const ti = await get('/team/info', a1.key);
      assert.equal(ti.status, 200, ti.text);
      assert.equal(ti.json.team_id, team.team_id);
      assert.equal((await get(`/team/info?team_id=${otherTeam.team_id}`, a1.key)).status, 403);
      assert.equal((await get(`/team/info?team_id=${team.team_id}`, b1.key)).status, 403);

      // write routes stay admin-only
      assert.equal((await post('/key/update', { key: a1.key, max_budget: 1 }, a1.key)).status, 401);
      assert.equal((await post('/user/update', { user_id: alice, max_budget: 1 }, a1.key)).status, 401);
    });

    test('a proxy_admin_viewer key reads everything and writes nothing', async () => {
      const v = await ok('/user/new', { user_id: `viewer-${be.name}`, user_role: 'proxy_admin_viewer' });
      const other = await ok('/key/generate', { user_id: `someone-${be.name}` });
      const mine = await get('/key/info', v.key);
      assert.equal(mine.status, 200, mine.text);
      assert.equal(mine.json.info.user_id, `viewer-${be.name}`);
      const info = await get(`/key/info?key=${other.key}`, v.key);
      assert.equal(info.status, 200, info.text);
      const list = await get(`/key/list?user_id=someone-${be.name}`, v.key);
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.json.keys, [other.token]);
      assert.equal((await get('/customer/list', v.key)).status, 200);
      assert.equal((await get(`/user/info?user_id=someone-${be.name}`, v.key)).status, 404);
      assert.equal((await post('/key/generate', {}, v.key)).status, 401);
      assert.equal((await post('/customer/block', { user_ids: ['x'] }, v.key)).status, 401);
    });

    test("an internal_user's key manages its own keys (LiteLLM's self-serve), nothing else", async () => {
      const me = `self-${be.name}`;
      const u = await ok('/user/new', { user_id: me, user_role: 'internal_user' });
      const viewer = await ok('/user/new', { user_id: `iview-${be.name}`, user_role: 'internal_user_viewer' });
      assert.equal((await post('/key/generate', {}, viewer.key)).status, 401, 'internal_user_viewer: read only');

      const g = await post('/key/generate', { key_alias: `mine-${be.name}`, max_budget: 1 }, u.key);
      assert.equal(g.status, 200, g.text);
      assert.equal(g.json.user_id, me, 'a key for its own user');
      assert.equal((await call({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }, g.json.key)).status, 200);
      assert.equal((await post('/key/generate', { user_id: 'someone-else' }, u.key)).status, 403);
      assert.equal((await post('/key/generate', { blocked: false }, u.key)).status, 403, 'admin-only fields');

      const other = await ok('/key/generate', { user_id: 'someone-else' });
      assert.equal((await post('/key/delete', { keys: [other.key] }, u.key)).status, 403);
      assert.equal((await post('/key/update', { key: other.key, max_budget: 100 }, u.key)).status, 403);
      assert.equal((await post(`/key/${other.key}/regenerate`, {}, u.key)).status, 403);
      assert.equal((await post('/key/block', { key: other.key }, u.key)).status, 401, 'blocking stays an admin route');
      assert.equal((await call({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }, other.key)).status, 200, 'untouched');

      const up = await post('/key/update', { key: g.json.key, key_alias: `mine2-${be.name}` }, u.key);
      assert.equal(up.status, 200, up.text);
      assert.equal((await post('/key/update', { key: g.json.key, blocked: false }, u.key)).status, 403);

      const admin = await ok('/team/new', { team_alias: `adm-${be.name}`, members_with_roles: [{ user_id: me, role: 'admin' }] });
      const plain = await ok('/team/new', { team_alias: `usr-${be.name}`, members_with_roles: [{ user_id: me, role: 'user' }] });
      const tk = await post('/key/generate', { team_id: admin.team_id }, u.key);
      assert.equal(tk.status, 200, `a key of a team it admins: ${tk.text}`);
      assert.equal((await post('/key/generate', { team_id: plain.team_id }, u.key)).status, 403, 'a plain member cannot');
      const teamKey = await ok('/key/generate', { team_id: plain.team_id, user_id: me });
      assert.equal((await post('/key/delete', { keys: [teamKey.key] }, u.key)).status, 403, "a team key is the team admin's to delete");

      const rg = await post(`/key/${g.json.key}/regenerate`, {}, u.key);
      assert.equal(rg.status, 200, rg.text);
      const del = await post('/key/delete', { keys: [rg.json.key, tk.json.key] }, u.key);
      assert.equal(del.status, 200, del.text);
      assert.equal((await call({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }, rg.json.key)).status, 401);
      assert.equal((await post('/user/new', { user_id: 'x' }, u.key)).status, 401, 'users stay an admin matter');
    });

    test('LiteLLM request fields and answer shapes: own keys, updates, teams on /user/new, org members', async () => {
      // /key/generate may set the key itself; /key/regenerate may name the new one
      const own = `sk-my-own-key-${be.name}-0001`;
      const g = await ok('/key/generate', { key: own, models: ['mock'] });
      assert.equal(g.key, own);
      assert.equal(g.key_name, `sk-...${own.slice(-4)}`);
      assert.equal((await call(chat(), own)).status, 200);
      assert.equal((await post('/key/generate', { key: own })).status, 400, 'the same key twice');
      assert.equal((await post('/key/generate', { key: 'pk-not-a-litellm-key' })).status, 400);
      assert.equal((await post('/key/generate', { key: MASTER_KEY })).status, 400);
      const own2 = `sk-my-own-key-${be.name}-0002`;
      const re = await ok(`/key/${own}/regenerate`, { new_key: own2 });
      assert.equal(re.key, own2);
      assert.equal((await call(chat(), own)).status, 401);
      assert.equal((await call(chat(), own2)).status, 200);

      // updates answer {"<id>": id, "data": row} (the row's fields stay at the top level too)
      const team = await ok('/team/new', { team_alias: `shape-${be.name}` });
      const tu = await ok('/team/update', { team_id: team.team_id, max_budget: 9 });
      assert.equal(tu.team_id, team.team_id);
      assert.equal(tu.data.team_id, team.team_id);
      assert.equal(tu.data.max_budget, 9);
      const org = await ok('/organization/new', { organization_alias: `org-${be.name}` });
      const u = await ok('/user/new', {
        user_id: `shape-${be.name}`,
        user_email: `shape-${be.name}@example.com`,
        teams: [team.team_id, 'no-such-team'],
        organization_id: org.organization_id,
        auto_create_key: false,
      });
      assert.equal(u.user_id, `shape-${be.name}`);
      const uu = await ok('/user/update', { user_email: `shape-${be.name}@example.com`, max_budget: 2 });
      assert.equal(uu.user_id, `shape-${be.name}`);
      assert.equal(uu.data.max_budget, 2);
      assert.equal((await post('/user/update', { user_email: 'nobody@example.com', max_budget: 1 })).status, 404);

      // /user/new with teams made the user a member of the team that exists
      const ti = await get(`/team/info?team_id=${team.team_id}`);
      assert.deepEqual(ti.json.team_info.members_with_roles, [{ role: 'user', user_id: `shape-${be.name}` }]);
      assert.deepEqual(ti.json.team_memberships.map((m) => m.user_id), [`shape-${be.name}`]);
      const ui = await get(`/user/info?user_id=shape-${be.name}`);
      assert.deepEqual(ui.json.user_info.teams, [team.team_id, 'no-such-team']);
      assert.deepEqual(ui.json.teams.map((t) => t.team_id), [team.team_id]);

      // /organization/info lists its members
      const oi = await get(`/organization/info?organization_id=${org.organization_id}`);
      assert.equal(oi.status, 200, oi.text);
      assert.deepEqual(oi.json.members.map((m) => m.user_id), [`shape-${be.name}`]);

      // /user/info without user_id, for an admin: every key and team
      const all = await get('/user/info');
      assert.equal(all.status, 200, all.text);
      assert.equal(all.json.user_id, null);
      assert.ok(all.json.keys.some((k) => k.token === re.token_id));
      assert.ok(all.json.teams.some((t) => t.team_id === team.team_id));
    });

    test('deleting a user or a team deletes its keys and memberships (as LiteLLM does)', async () => {
      const team = await ok('/team/new', { team_alias: `del-${be.name}` });
      const u = await ok('/user/new', { user_id: `leaver-${be.name}`, teams: [team.team_id] });
      const userKey = u.key;
      const teamKey = (await ok('/key/generate', { team_id: team.team_id })).key;
      const stayer = await ok('/user/new', { user_id: `stayer-${be.name}`, teams: [team.team_id], auto_create_key: false });
      assert.equal(stayer.user_id, `stayer-${be.name}`);
      assert.equal((await call(chat(), userKey)).status, 200);
      assert.equal((await call(chat(), teamKey)).status, 200);

      await ok('/user/delete', { user_ids: [`leaver-${be.name}`] });
      assert.equal((await call(chat(), userKey)).status, 401, "the deleted user's key is gone");
      assert.equal((await get(`/key/info?key=${userKey}`)).status, 404);
      const ti = await get(`/team/info?team_id=${team.team_id}`);
      assert.deepEqual(ti.json.team_info.members_with_roles.map((m) => m.user_id), [`stayer-${be.name}`]);
      assert.deepEqual(ti.json.team_memberships.map((m) => m.user_id), [`stayer-${be.name}`]);
      assert.equal((await post('/user/delete', { user_ids: ['no-such-user'] })).status, 404);

      await ok('/team/delete', { team_ids: [team.team_id] });
      assert.equal((await call(chat(), teamKey)).status, 401, "the deleted team's key is gone");
      const si = await get(`/user/info?user_id=stayer-${be.name}`);
      assert.deepEqual(si.json.user_info.teams, []);
    });

    test('/team/new members_with_roles and /team/member_add by user_email make memberships', async () => {
      const t = await ok('/team/new', {
        team_alias: `members-${be.name}`,
        members_with_roles: [
          { role: 'admin', user_id: `lead-${be.name}` },
          { role: 'user', user_email: `dev-${be.name}@example.com` },
        ],
      });
      assert.equal(t.members_with_roles.length, 2);
      assert.equal(t.members_with_roles[0].user_id, `lead-${be.name}`);
      assert.equal(t.members_with_roles[0].role, 'admin');
      const devId = t.members_with_roles[1].user_id;
      assert.ok(devId, 'a user was made for the e-mail address');
      assert.equal(t.members_with_roles[1].user_email, `dev-${be.name}@example.com`);
      const ti = await get(`/team/info?team_id=${t.team_id}`);
      assert.deepEqual(ti.json.team_memberships.map((m) => m.user_id).sort(), [`lead-${be.name}`, devId].sort());
      const lead = await get(`/user/info?user_id=lead-${be.name}`);
      assert.deepEqual(lead.json.user_info.teams, [t.team_id]);
      const dev = await get(`/user/info?user_id=${devId}`);
      assert.equal(dev.json.user_info.user_email, `dev-${be.name}@example.com`);

      // by e-mail again: the same user, already a member
      const again = await post('/team/member_add', { team_id: t.team_id, member: { role: 'user', user_email: `dev-${be.name}@example.com` } });
      assert.equal(again.status, 400, again.text);
      const t2 = await ok('/team/new', { team_alias: `members2-${be.name}` });
      const add = await ok('/team/member_add', { team_id: t2.team_id, member: [{ role: 'user', user_email: `dev-${be.name}@example.com` }] });
      assert.equal(add.members_with_roles[0].user_id, devId);
      assert.equal((await post('/team/member_add', { team_id: t2.team_id, member: { role: 'user' } })).status, 400);
    });

    test('/user/list and /team/list (LiteLLM UI listings)', async () => {
      const t = await ok('/team/new', { team_alias: `list-${be.name}` });
      await ok('/user/new', { user_id: `l1-${be.name}`, user_email: `L1-${be.name}@Example.com`, user_role: 'internal_user', teams: [t.team_id] });
      await ok('/user/new', { user_id: `l2-${be.name}`, user_role: 'internal_user_viewer', auto_create_key: false });
      const page = await get(`/user/list?user_ids=l1-${be.name},l2-${be.name}&page_size=1&page=2`);
      assert.equal(page.status, 200, page.text);
      assert.equal(page.json.total, 2);
      assert.equal(page.json.page, 2);
      assert.equal(page.json.page_size, 1);
      assert.equal(page.json.total_pages, 2);
      assert.deepEqual(page.json.users.map((u) => u.user_id), [`l2-${be.name}`]);
      const byRole = await get(`/user/list?role=internal_user_viewer&user_ids=l1-${be.name},l2-${be.name}`);
      assert.deepEqual(byRole.json.users.map((u) => u.user_id), [`l2-${be.name}`]);
      const byTeam = await get(`/user/list?team=${t.team_id}`);
      assert.deepEqual(byTeam.json.users.map((u) => [u.user_id, u.key_count]), [[`l1-${be.name}`, 1]]);
      const byEmail = await get(`/user/list?user_email=l1-${be.name}@example`);
      assert.deepEqual(byEmail.json.users.map((u) => u.user_id), [`l1-${be.name}`]);

      const key = (await ok('/key/generate', { team_id: t.team_id, user_id: `l1-${be.name}` })).key;
      const tl = await get(`/team/list?user_id=l1-${be.name}`);
      assert.equal(tl.status, 200, tl.text);
      assert.deepEqual(tl.json.map((x) => x.team_id), [t.team_id]);
      assert.equal(tl.json[0].keys.length, 1);
      const every = await get('/team/list');
      assert.ok(every.json.length >= 2 && every.json.some((x) => x.team_id === t.team_id));
      // a non-admin key: its own user's teams only
      const own = await get('/team/list', key);
      assert.equal(own.status, 200, own.text);
      assert.deepEqual(own.json.map((x) => x.team_id), [t.team_id]);
      assert.equal((await get(`/team/list?user_id=l2-${be.name}`, key)).status, 403);
      assert.equal((await get('/user/list', key)).status, 401);
    });

    test('no key or secret in the logs; clean exit', async () => {
      await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY]);
    });
  });
}
