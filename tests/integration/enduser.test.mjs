// End users (LiteLLM's customers) on the request path, through the real binary and a real store
// (SQLite; PostgreSQL when make test provides TEST_DATABASE_URL, alone and with the Redis limiter
// when it provides TEST_REDIS_URL too):
//   - a customer whose max_budget is worth 2 requests: the 3rd request naming it in `user` is 429
//     budget_exceeded naming the end_user scope — with the master key, which LiteLLM limits too;
//   - rpm_limit on the customer's budget, across the OpenAI surface (`user`) and /v1/messages
//     (metadata.user_id), with a virtual key (the key's scopes and the end user's together);
//   - a `user` that is no customer is not limited;
//   - spend rows carry end_user, and /customer/info shows the customer's spend;
//   - a /customer/update reaches the cache at once (the admin broadcast).
//
// Costs are exact: the mock deployment has fixed per-token prices; its usage is prompt_tokens =
// ceil(content chars / 4) and completion_tokens = 16, and the requests send max_tokens 16.

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
  freshRedisDb,
} from '../lib/harness.mjs';

const CONFIG = [
  'model_list:',
  '  - model_name: priced',
  '    litellm_params: {model: mock/priced, input_cost_per_token: 0.000001, output_cost_per_token: 0.0001}',
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

const CONTENT = 'ping';
const ACTUAL = 1 * 1 + 16 * 100; // micro-dollars billed per request
const chat = (user) => ({
  model: 'priced',
  messages: [{ role: 'user', content: CONTENT }],
  max_tokens: 16,
  ...(user !== undefined ? { user } : {}),
});

const noPg = !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set';
const backends = [
  { name: 'sqlite', url: () => null },
  { name: 'postgres', url: () => freshPgDatabase('enduser'), skip: noPg, shared: true },
  {
    name: 'postgres with the Redis limiter',
    url: () => freshPgDatabase('enduser'),
    redis: () => freshRedisDb(11),
    skip: noPg || (!process.env.TEST_REDIS_URL && 'TEST_REDIS_URL is not set'),
    shared: true,
  },
];

for (const be of backends) {
  describe(`end users on ${be.name}`, { skip: be.skip }, () => {
    let tg;
    const env = {};
    const admin = async (path, body) => {
      const r = await postJSON(`${tg.url}${path}`, body);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      return r.json;
    };
    const call = (body, key = MASTER_KEY) => postJSON(`${tg.url}/v1/chat/completions`, body, { key });

    before(async () => {
      const url = be.url();
      if (url) env.DATABASE_URL = url;
      if (be.redis) env.REDIS_URL = be.redis();
      tg = await startTollgate({ config: CONFIG, env });
    });
    after(async () => {
      if (tg && tg.alive()) await tg.stop('SIGKILL');
    });

    test('a customer budget worth 2 requests refuses the 3rd, even for the master key', async () => {
      // admission: spend + reserved + estimate <= max_budget; the estimate is about 1630 µ$:
      // 1601 + 1630 fits in 4000, 3202 + 1630 does not
      await admin('/customer/new', { user_id: 'cust-budget', max_budget: 0.004 });
      for (let i = 0; i < 2; i++) {
        const r = await call(chat('cust-budget'));
        assert.equal(r.status, 200, r.text);
        assert.equal(Number(r.headers['x-litellm-response-cost']), ACTUAL / 1e6);
      }
      const r3 = await call(chat('cust-budget'));
      assert.equal(r3.status, 429, r3.text);
      assert.equal(openAIErrorShapeProblem(r3.json), null);
      assert.equal(r3.json.error.code, 'budget_exceeded', r3.text);
      assert.match(r3.json.error.message, /end_user 'cust-budget'/);
      // another user, and no user at all, are not affected by that customer's budget
      assert.equal((await call(chat('someone-else'))).status, 200);
      assert.equal((await call(chat())).status, 200);

      // a raised budget applies at once (admin broadcast empties the end-user caches)
      await admin('/customer/update', { user_id: 'cust-budget', max_budget: 0.01 });
      const r4 = await call(chat('cust-budget'));
      assert.equal(r4.status, 200, r4.text);
    });

    test('spend rows carry end_user; /customer/info shows the spend', async () => {
      let rows = [];
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        const r = await getJSON(`${tg.url}/spend/logs?customer_id=cust-budget`);
        assert.equal(r.status, 200, r.text);
        rows = r.json;
        if (rows.length >= 3) break;
        await sleep(200);
      }
      assert.equal(rows.length, 3, JSON.stringify(rows).slice(0, 500));
      for (const row of rows) assert.equal(row.end_user, 'cust-budget');
      let info;
      while (Date.now() < deadline + 4000) {
        info = await getJSON(`${tg.url}/customer/info?end_user_id=cust-budget`);
        assert.equal(info.status, 200, info.text);
        if (Math.round(info.json.spend * 1e6) >= 3 * ACTUAL) break;
        await sleep(200);
      }
      assert.equal(Math.round(info.json.spend * 1e6), 3 * ACTUAL, info.text);
      // a user that was never created is billed as an end user too (LiteLLM creates the row)
      const other = await getJSON(`${tg.url}/spend/logs?customer_id=someone-else`);
      assert.equal(other.json.length, 1);
      assert.equal(other.json[0].end_user, 'someone-else');
    });

    test('rpm_limit on the customer budget, OpenAI user and /v1/messages metadata.user_id, virtual key', async () => {
      await admin('/customer/new', { user_id: 'cust-rpm', rpm_limit: 2 });
      const key = (await admin('/key/generate', {})).key;
      // stay inside one clock minute: the rpm window is a fixed minute
      const s = new Date().getUTCSeconds();
      if (s > 50) await sleep((61 - s) * 1000);
      assert.equal((await call(chat('cust-rpm'), key)).status, 200);
      const m = await postJSON(
        `${tg.url}/v1/messages`,
        { model: 'priced', max_tokens: 16, messages: [{ role: 'user', content: CONTENT }], metadata: { user_id: 'cust-rpm' } },
        { key },
      );
      assert.equal(m.status, 200, m.text);
      const r3 = await call(chat('cust-rpm'), key);
      assert.equal(r3.status, 429, r3.text);
      assert.equal(r3.json.error.code, 'rate_limit_exceeded', r3.text);
      assert.match(r3.json.error.message, /end_user 'cust-rpm': rpm_limit 2/);
      assert.ok(Number(r3.headers['retry-after']) >= 1, 'retry-after');
      assert.equal(r3.headers['x-ratelimit-limit-requests'], '2');
      const m3 = await postJSON(
        `${tg.url}/v1/messages`,
        { model: 'priced', max_tokens: 16, messages: [{ role: 'user', content: CONTENT }], metadata: { user_id: 'cust-rpm' } },
        { key },
      );
      assert.equal(m3.status, 429, m3.text);
      assert.equal(m3.json.type, 'error', m3.text); // Anthropic's error shape
      // the same key without that user, and an unknown user, still pass
      assert.equal((await call(chat(), key)).status, 200);
      assert.equal((await call(chat('not-a-customer'), key)).status, 200);
    });

    test('a customer created on another instance applies within about a second', { skip: !be.shared && 'SQLite is one instance per data dir' }, async () => {
      const tg2 = await startTollgate({ config: CONFIG, env });
      try {
        const at2 = (body) => postJSON(`${tg2.url}/v1/chat/completions`, body);
        assert.equal((await at2(chat('late'))).status, 200); // cached on tg2: no limits
        await admin('/customer/new', { user_id: 'late', max_budget: 0 }); // written on tg
        const t0 = Date.now();
        let r;
        while (Date.now() - t0 < 3000) {
          r = await at2(chat('late'));
          if (r.status !== 200) break;
          await sleep(50);
        }
        assert.equal(r.status, 429, r.text);
        assert.equal(r.json.error.code, 'budget_exceeded', r.text);
        assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
      } finally {
        await assertHealthyThenCleanExit(tg2, assert);
      }
    });

    test('exits cleanly', async () => {
      await assertHealthyThenCleanExit(tg, assert);
    });
  });
}
