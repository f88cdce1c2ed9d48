// `tollgate import-litellm`: a LiteLLM database (tables created here with LiteLLM's table and
// column names and PostgreSQL types, as its Prisma schema makes them) holding keys with a user, a
// team (with team model aliases), a membership, budgets, a customer and an organization is
// imported into (a) a SQLite data directory and (b) another PostgreSQL database; Tollgate then
// serves on it and the original `sk-…` keys work with their limits:
//   - the key authenticates; its model list (403 outside it) and its aliases apply;
//   - a key whose spend is at its max_budget is refused (429), so is a customer whose budget is
//     spent; a blocked key is 401;
//   - /key/info, /user/info, /team/info, /customer/info and /organization/info show the imported
//     fields, with spend in dollars equal to LiteLLM's;
//   - a second import changes nothing; --dry-run writes nothing (not even the schema) and says
//     what it would do; a change in LiteLLM reaches a running instance after a re-import;
//     Tollgate's own larger spend is kept;
//   - a bad --from is a clear error, exit status != 0, no password printed.
// Needs PostgreSQL (TEST_DATABASE_URL, which make test sets); skipped without it.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  startTollgate,
  runTollgate,
  postJSON,
  getJSON,
  makeTempDir,
  waitUntil,
  MASTER_KEY,
  freshPgDatabase,
  openAIErrorShapeProblem,
  assertHealthyThenCleanExit,
} from '../lib/harness.mjs';

const noPg = !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set';

const CONFIG = [
  'model_list:',
  '  - model_name: priced',
  '    litellm_params: {model: mock/priced, input_cost_per_token: 0.000001, output_cost_per_token: 0.0001}',
  '  - model_name: other',
  '    litellm_params: {model: mock/other}',
  'general_settings:',
  `  master_key: ${MASTER_KEY}`,
].join('\n');

// LiteLLM keys: "sk-" + 22 url-safe characters, stored as the SHA-256 hex of the whole key.
const KEY = 'sk-Imp0rtedKeyAAAAAAAAAA';
const SPENT_KEY = 'sk-Imp0rtedSpentBBBBBBBB';
const BLOCKED_KEY = 'sk-Imp0rtedBlockedCCCCCC';
const NEW_KEY = 'sk-Imp0rtedLaterDDDDDDDD';
const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');

// The tables as LiteLLM's Prisma schema creates them on PostgreSQL (String → text, Float →
// double precision, Int → integer, BigInt → bigint, DateTime → timestamp(3), Json → jsonb,
// String[] → text[]), with the columns Tollgate does not keep included.
const DDL = `
CREATE TABLE "LiteLLM_BudgetTable" (
  budget_id text PRIMARY KEY, max_budget double precision, soft_budget double precision,
  max_parallel_requests integer, tpm_limit bigint, rpm_limit bigint, model_max_budget jsonb,
  budget_duration text, budget_reset_at timestamp(3), allowed_models text[] DEFAULT ARRAY[]::text[],
  created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, created_by text NOT NULL,
  updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_by text NOT NULL);
CREATE TABLE "LiteLLM_OrganizationTable" (
  organization_id text PRIMARY KEY, organization_alias text NOT NULL, budget_id text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}', models text[], spend double precision NOT NULL DEFAULT 0,
  model_spend jsonb NOT NULL DEFAULT '{}', object_permission_id text,
  created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, created_by text NOT NULL,
  updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_by text NOT NULL);
CREATE TABLE "LiteLLM_ModelTable" (
  id serial PRIMARY KEY, aliases jsonb, created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  created_by text NOT NULL, updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_by text NOT NULL);
CREATE TABLE "LiteLLM_TeamTable" (
  team_id text PRIMARY KEY, team_alias text, organization_id text, object_permission_id text,
  admins text[], members text[], members_with_roles jsonb NOT NULL DEFAULT '{}',
  metadata jsonb NOT NULL DEFAULT '{}', max_budget double precision, soft_budget double precision,
  spend double precision NOT NULL DEFAULT 0, models text[], max_parallel_requests integer,
  tpm_limit bigint, rpm_limit bigint, budget_duration text, budget_reset_at timestamp(3),
  blocked boolean NOT NULL DEFAULT false,
  created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  model_spend jsonb NOT NULL DEFAULT '{}', model_max_budget jsonb NOT NULL DEFAULT '{}',
  router_settings jsonb DEFAULT '{}', team_member_permissions text[] DEFAULT ARRAY[]::text[],
  model_id integer UNIQUE);
CREATE TABLE "LiteLLM_UserTable" (
  user_id text PRIMARY KEY, user_alias text, team_id text, sso_user_id text UNIQUE,
  organization_id text, object_permission_id text, password text, teams text[] DEFAULT ARRAY[]::text[],
  user_role text, max_budget double precision, spend double precision NOT NULL DEFAULT 0,
  user_email text, models text[], metadata jsonb NOT NULL DEFAULT '{}', max_parallel_requests integer,
  tpm_limit bigint, rpm_limit bigint, budget_duration text, budget_reset_at timestamp(3),
  allowed_cache_controls text[] DEFAULT ARRAY[]::text[], policies text[] DEFAULT ARRAY[]::text[],
  model_spend jsonb NOT NULL DEFAULT '{}', model_max_budget jsonb NOT NULL DEFAULT '{}',
  created_at timestamp(3) DEFAULT CURRENT_TIMESTAMP, updated_at timestamp(3) DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "LiteLLM_TeamMembership" (
  user_id text NOT NULL, team_id text NOT NULL, spend double precision NOT NULL DEFAULT 0,
  total_spend double precision NOT NULL DEFAULT 0, budget_id text, PRIMARY KEY (user_id, team_id));
CREATE TABLE "LiteLLM_EndUserTable" (
  user_id text PRIMARY KEY, alias text, spend double precision NOT NULL DEFAULT 0,
  allowed_model_region text, default_model text, budget_id text, object_permission_id text,
  blocked boolean NOT NULL DEFAULT false);
CREATE TABLE "LiteLLM_VerificationToken" (
  token text PRIMARY KEY, key_name text, key_alias text, soft_budget_cooldown boolean NOT NULL DEFAULT false,
  spend double precision NOT NULL DEFAULT 0, expires timestamp(3), models text[],
  aliases jsonb NOT NULL DEFAULT '{}', config jsonb NOT NULL DEFAULT '{}', router_settings jsonb DEFAULT '{}',
  user_id text, team_id text, agent_id text, project_id text, permissions jsonb NOT NULL DEFAULT '{}',
  max_parallel_requests integer, metadata jsonb NOT NULL DEFAULT '{}', blocked boolean,
  tpm_limit bigint, rpm_limit bigint, max_budget double precision, budget_duration text,
  budget_reset_at timestamp(3), allowed_cache_controls text[] DEFAULT ARRAY[]::text[],
  allowed_routes text[] DEFAULT ARRAY[]::text[], policies text[] DEFAULT ARRAY[]::text[],
  access_group_ids text[] DEFAULT ARRAY[]::text[], model_spend jsonb NOT NULL DEFAULT '{}',
  model_max_budget jsonb NOT NULL DEFAULT '{}', budget_id text, organization_id text,
  object_permission_id text, created_at timestamp(3) DEFAULT CURRENT_TIMESTAMP, created_by text,
  updated_at timestamp(3) DEFAULT CURRENT_TIMESTAMP, updated_by text, last_active timestamp(3),
  rotation_count integer DEFAULT 0, auto_rotate boolean DEFAULT false, rotation_interval text,
  last_rotation_at timestamp(3), key_rotation_at timestamp(3), budget_limits jsonb);
`;

const DATA = `
INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, rpm_limit, tpm_limit, created_by, updated_by)
  VALUES ('b-org', 1000, NULL, NULL, 'admin', 'admin'), ('b-member', 5.5, 100, NULL, 'admin', 'admin'),
         ('b-cust', 50, NULL, NULL, 'admin', 'admin'), ('b-small', 2, NULL, NULL, 'admin', 'admin');
INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, models, spend, created_by, updated_by)
  VALUES ('org-1', 'Org One', 'b-org', ARRAY['priced'], 3.25, 'admin', 'admin');
INSERT INTO "LiteLLM_ModelTable" (id, aliases, created_by, updated_by) VALUES (7, '{"team-alias": "priced"}', 'admin', 'admin');
INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, organization_id, admins, members, members_with_roles, models,
    max_budget, spend, model_id, rpm_limit, created_at)
  VALUES ('t-1', 'Team One', 'org-1', ARRAY[]::text[], ARRAY[]::text[],
          '[{"role": "admin", "user_id": "u-1"}]', ARRAY['priced', 'my-alias', 'team-alias'], 200, 0.75, 7, 1000,
          '2024-02-03 04:05:06.789');
INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, teams, models, max_budget, spend, organization_id, password)
  VALUES ('u-1', 'u1@example.com', 'internal_user', ARRAY['t-1'], ARRAY[]::text[], 100, 0.5, 'org-1', 'hashed-secret');
INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, budget_id) VALUES ('u-1', 't-1', 0.1, 'b-member');
INSERT INTO "LiteLLM_EndUserTable" (user_id, alias, spend, budget_id) VALUES ('cust-1', 'Customer One', 1.5, 'b-cust'), ('cust-over', NULL, 2, 'b-small');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend, models, aliases, user_id, team_id,
    metadata, max_budget, rpm_limit, tpm_limit, budget_duration, budget_reset_at, organization_id,
    model_spend, created_at, agent_id)
  VALUES ('${sha(KEY)}', 'sk-...AAAA', 'imported-key', 0.0123, ARRAY['priced', 'my-alias', 'team-alias'],
          '{"my-alias": "priced"}', 'u-1', 't-1', '{"note": "from litellm"}', 10, 100, 100000, '30d',
          '2099-01-01 00:00:00', 'org-1', '{"priced": 0.0123}', '2024-01-02 03:04:05.678', 'agent-x');
INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, spend, models, user_id, max_budget)
  VALUES ('${sha(SPENT_KEY)}', 'spent-key', 2.5, ARRAY[]::text[], 'u-1', 2.5);
INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, models, user_id, blocked)
  VALUES ('${sha(BLOCKED_KEY)}', 'blocked-key', ARRAY[]::text[], 'u-1', true);
`;

function psql(url, sql) {
  const r = spawnSync('psql', [url, '-At', '-v', 'ON_ERROR_STOP=1'], { input: sql, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

const chat = (model) => ({ model, messages: [{ role: 'user', content: 'ping' }], max_tokens: 16 });

// "<table> -> <dst>: read N, inserted I, updated U, unchanged C" lines → {table: {read, …}}
function summary(stdout) {
  const out = {};
  for (const m of stdout.matchAll(/^(\w+) -> \w+: read (\d+), (?:would )?insert(?:ed)? (\d+), (?:would )?update(?:d)? (\d+), unchanged (\d+)$/gm)) {
    out[m[1]] = { read: +m[2], inserted: +m[3], updated: +m[4], unchanged: +m[5] };
  }
  return out;
}

const targets = [
  { name: 'SQLite', pg: false },
  { name: 'PostgreSQL', pg: true },
];

describe('import-litellm', { skip: noPg }, () => {
  let src;
  before(() => {
    src = freshPgDatabase('litellm');
    psql(src, DDL + DATA);
  });

  for (const target of targets) {
    describe(`into ${target.name}`, () => {
      let tg;
      const env = {};
      const run = (...args) => runTollgate(['import-litellm', '--from', src, ...args], { env });
      const info = async (p) => {
        const r = await getJSON(`${tg.url}${p}`);
        assert.equal(r.status, 200, `${p}: ${r.text}`);
        return r.json;
      };

      before(async () => {
        env.TOLLGATE_DATA_DIR = path.join(makeTempDir(), 'data');
        if (target.pg) env.DATABASE_URL = freshPgDatabase('import');
      });
      after(async () => {
        if (tg && tg.alive()) await tg.stop('SIGKILL');
      });

      test('--dry-run on an empty store writes nothing and says what it would insert', () => {
        const r = run('--dry-run');
        assert.equal(r.code, 0, r.stderr);
        const s = summary(r.stdout);
        assert.deepEqual(s.LiteLLM_VerificationToken, { read: 3, inserted: 3, updated: 0, unchanged: 0 });
        assert.deepEqual(s.LiteLLM_EndUserTable, { read: 2, inserted: 2, updated: 0, unchanged: 0 });
        assert.match(r.stdout, /dry run: nothing was written/);
        if (target.pg) {
          assert.equal(psql(env.DATABASE_URL, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('keys', 'schema_migrations')"), '0');
        } else {
          assert.equal(fs.existsSync(env.TOLLGATE_DATA_DIR), false, 'the data dir was not created');
        }
      });

      test('the import copies every table and reports what it dropped', () => {
        const r = run();
        assert.equal(r.code, 0, r.stderr);
        const s = summary(r.stdout);
        assert.deepEqual(s, {
          LiteLLM_BudgetTable: { read: 4, inserted: 4, updated: 0, unchanged: 0 },
          LiteLLM_OrganizationTable: { read: 1, inserted: 1, updated: 0, unchanged: 0 },
          LiteLLM_UserTable: { read: 1, inserted: 1, updated: 0, unchanged: 0 },
          LiteLLM_TeamTable: { read: 1, inserted: 1, updated: 0, unchanged: 0 },
          LiteLLM_TeamMembership: { read: 1, inserted: 1, updated: 0, unchanged: 0 },
          LiteLLM_EndUserTable: { read: 2, inserted: 2, updated: 0, unchanged: 0 },
          LiteLLM_VerificationToken: { read: 3, inserted: 3, updated: 0, unchanged: 0 },
        });
        assert.match(r.stdout, /columns Tollgate does not keep:.*\bpassword\b/);
        assert.match(r.stdout, /columns Tollgate does not keep:.*\bagent_id\b/);
      });

      test('a second import changes nothing', () => {
        const r = run();
        assert.equal(r.code, 0, r.stderr);
        for (const [table, c] of Object.entries(summary(r.stdout))) {
          assert.equal(c.inserted + c.updated, 0, `${table}: ${JSON.stringify(c)}`);
          assert.equal(c.unchanged, c.read, table);
        }
        assert.equal(Object.keys(summary(r.stdout)).length, 7);
      });

      test('/key/info and the owners show the imported fields, spend in LiteLLM dollars', async () => {
        tg = await startTollgate({ config: CONFIG, env });
        const k = (await info(`/key/info?key=${sha(KEY)}`)).info;
        assert.equal(k.token, sha(KEY));
        assert.equal(k.key_alias, 'imported-key');
        assert.equal(k.key_name, 'sk-...AAAA');
        assert.equal(k.user_id, 'u-1');
        assert.equal(k.team_id, 't-1');
        assert.equal(k.organization_id, 'org-1');
        assert.deepEqual(k.models, ['priced', 'my-alias', 'team-alias']);
        assert.deepEqual(k.aliases, { 'my-alias': 'priced' });
        assert.equal(k.metadata.note, 'from litellm');
        assert.equal(k.max_budget, 10);
        assert.deepEqual(k.model_spend, { priced: 0.0123 }); // stored as micro-dollars, shown in dollars
        assert.equal(k.rpm_limit, 100);
        assert.equal(k.tpm_limit, 100000);
        assert.equal(k.budget_duration, '30d');
        assert.match(k.budget_reset_at, /^2099-01-01T00:00:00(\.000)?(Z|\+00:00)$/);
        assert.match(k.created_at, /^2024-01-02T03:04:05\.678/);
        assert.equal(k.blocked, false);
        assert.equal(k.spend, 0.0123); // before any call through Tollgate
        assert.equal((await info(`/key/info?key=${sha(SPENT_KEY)}`)).info.spend, 2.5);
        assert.equal((await info(`/key/info?key=${sha(BLOCKED_KEY)}`)).info.blocked, true);

        const u = await info('/user/info?user_id=u-1');
        const user = u.user_info || u;
        assert.equal(user.user_email, 'u1@example.com');
        assert.equal(user.user_role, 'internal_user');
        assert.equal(user.max_budget, 100);
        assert.equal(user.spend, 0.5);
        const t = await info('/team/info?team_id=t-1');
        const team = t.team_info || t;
        assert.equal(team.team_alias, 'Team One');
        assert.equal(team.max_budget, 200);
        assert.equal(team.spend, 0.75);
        assert.deepEqual(team.model_aliases, { 'team-alias': 'priced' });
        assert.deepEqual(team.members_with_roles, [{ role: 'admin', user_id: 'u-1' }]);
        const c = await info('/customer/info?end_user_id=cust-1');
        assert.equal(c.alias, 'Customer One');
        assert.equal(c.budget_id, 'b-cust');
        assert.equal(c.spend, 1.5);
        const o = await info('/organization/info?organization_id=org-1');
        assert.equal(o.organization_alias, 'Org One');
        assert.equal(o.spend, 3.25);
      });

      test('the original sk- keys work, with their models, aliases, budgets and blocks', async () => {
        const call = (key, model) => postJSON(`${tg.url}/v1/chat/completions`, chat(model), { key });
        let r = await call(KEY, 'priced');
        assert.equal(r.status, 200, r.text);
        r = await call(KEY, 'my-alias'); // the key's alias
        assert.equal(r.status, 200, r.text);
        r = await call(KEY, 'team-alias'); // the team's alias (LiteLLM_ModelTable)
        assert.equal(r.status, 200, r.text);
        r = await call(KEY, 'other'); // configured, but not in the key's list
        assert.equal(r.status, 403, r.text);
        assert.equal(openAIErrorShapeProblem(r.json), null);
        r = await call(SPENT_KEY, 'priced');
        assert.equal(r.status, 429, r.text);
        assert.match(r.json.error.message, /[Bb]udget/);
        // a customer whose budget is spent is refused, as LiteLLM refuses it
        r = await postJSON(`${tg.url}/v1/chat/completions`, { ...chat('priced'), user: 'cust-over' }, { key: KEY });
        assert.equal(r.status, 429, r.text);
        assert.match(r.json.error.message, /end_user/);
        r = await call(BLOCKED_KEY, 'priced');
        assert.equal(r.status, 401, r.text);
        r = await call('sk-Imp0rtedUnknownEEEEEE', 'priced');
        assert.equal(r.status, 401, r.text);
      });

      test('a change in LiteLLM reaches the running instance after a re-import; Tollgate\'s larger spend is kept', async () => {
        // the calls above are in Tollgate's spend; wait until the writer stored them
        let before;
        await waitUntil(async () => {
          before = (await info(`/key/info?key=${sha(KEY)}`)).info.spend;
          return before > 0.0123;
        }, 5000, 'spend written');
        // SPENT_KEY is cached by now (refused above): a larger budget in LiteLLM must reach the cache
        assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chat('priced'), { key: SPENT_KEY })).status, 429);
        psql(src, `UPDATE "LiteLLM_VerificationToken" SET max_budget = 20 WHERE token = '${sha(KEY)}';
          UPDATE "LiteLLM_VerificationToken" SET max_budget = 100 WHERE token = '${sha(SPENT_KEY)}';
          INSERT INTO "LiteLLM_VerificationToken" (token, models, user_id) VALUES ('${sha(NEW_KEY)}', ARRAY[]::text[], 'u-1');`);
        try {
          const dry = run('--dry-run');
          assert.equal(dry.code, 0, dry.stderr);
          assert.deepEqual(summary(dry.stdout).LiteLLM_VerificationToken, { read: 4, inserted: 1, updated: 2, unchanged: 1 });
          assert.equal((await postJSON(`${tg.url}/v1/chat/completions`, chat('priced'), { key: NEW_KEY })).status, 401);
          assert.equal((await info(`/key/info?key=${sha(KEY)}`)).info.max_budget, 10, 'the dry run wrote nothing');

          const r = run();
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(summary(r.stdout).LiteLLM_VerificationToken, { read: 4, inserted: 1, updated: 2, unchanged: 1 });
          await waitUntil(async () => (await postJSON(`${tg.url}/v1/chat/completions`, chat('priced'), { key: NEW_KEY })).status === 200, 5000, 'the new key works');
          await waitUntil(async () => (await postJSON(`${tg.url}/v1/chat/completions`, chat('priced'), { key: SPENT_KEY })).status === 200, 5000, 'the cached key has its new budget');
          const k = (await info(`/key/info?key=${sha(KEY)}`)).info;
          assert.equal(k.max_budget, 20);
          assert.ok(k.spend >= before, `spend ${k.spend} kept (was ${before}, LiteLLM has 0.0123)`);
        } finally {
          psql(src, `DELETE FROM "LiteLLM_VerificationToken" WHERE token = '${sha(NEW_KEY)}'; UPDATE "LiteLLM_VerificationToken" SET max_budget = 10 WHERE token = '${sha(KEY)}';
            UPDATE "LiteLLM_VerificationToken" SET max_budget = 2.5 WHERE token = '${sha(SPENT_KEY)}';`);
        }
      });

      test('the gateway is still healthy, exits cleanly and never printed a key', async () => {
        await assertHealthyThenCleanExit(tg, assert, [MASTER_KEY, KEY, SPENT_KEY, BLOCKED_KEY, NEW_KEY]);
      });
    });
  }

  test('a bad --from is a clear error, exit status != 0, and never prints the password', () => {
    const bad = [
      'postgresql://litellm:SuperSecretPw42@127.0.0.1:1/litellm',
      'postgresql://litellm:SuperSecretPw42@127.0.0.1:notaport/litellm',
      'mysql://litellm:SuperSecretPw42@127.0.0.1/litellm',
    ];
    for (const from of bad) {
      const r = runTollgate(['import-litellm', '--from', from], { env: { TOLLGATE_DATA_DIR: path.join(makeTempDir(), 'data') } });
      assert.notEqual(r.code, 0, from);
      assert.match(r.stderr, /import-litellm: /, from);
      assert.ok(!(r.stdout + r.stderr).includes('SuperSecretPw42'), `${from}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /Sanitizer|runtime error/, `${from}: ${r.stderr}`);
    }
    const empty = runTollgate(['import-litellm', '--from', freshPgDatabase('litellm_empty')], { env: { TOLLGATE_DATA_DIR: path.join(makeTempDir(), 'data') } });
    assert.equal(empty.code, 1, 'a database without LiteLLM tables is an error');
    assert.match(empty.stderr, /none of LiteLLM's tables/);
    const missing = runTollgate(['import-litellm']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /--from/);
  });

  test('tables an older LiteLLM lacks are skipped with a note', () => {
    const old = freshPgDatabase('litellm_old');
    psql(old, `CREATE TABLE "LiteLLM_VerificationToken" (token text PRIMARY KEY, spend double precision NOT NULL DEFAULT 0,
      models text[], max_budget double precision, user_id text);
      INSERT INTO "LiteLLM_VerificationToken" VALUES ('${sha(KEY)}', 0.0000005, ARRAY['priced'], NULL, NULL);`);
    const dataDir = path.join(makeTempDir(), 'data');
    // Prisma's own URL parameters (LiteLLM's DATABASE_URL may carry them) are accepted
    const r = runTollgate(['import-litellm', '--from', `${old}?schema=public&connection_limit=5`], { env: { TOLLGATE_DATA_DIR: dataDir } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /LiteLLM_TeamTable: not in the LiteLLM database .*skipped/);
    assert.deepEqual(summary(r.stdout).LiteLLM_VerificationToken, { read: 1, inserted: 1, updated: 0, unchanged: 0 });
  });

  test('the import is all or nothing: a duplicate key_alias fails it and nothing is written', () => {
    const dup = freshPgDatabase('litellm_dup');
    psql(dup, `CREATE TABLE "LiteLLM_UserTable" (user_id text PRIMARY KEY, spend double precision NOT NULL DEFAULT 0);
      INSERT INTO "LiteLLM_UserTable" VALUES ('u-dup', 1);
      CREATE TABLE "LiteLLM_VerificationToken" (token text PRIMARY KEY, key_alias text, spend double precision NOT NULL DEFAULT 0);
      INSERT INTO "LiteLLM_VerificationToken" VALUES ('${sha(KEY)}', 'same', 0), ('${sha(SPENT_KEY)}', 'same', 0);`);
    const target = freshPgDatabase('import_dup');
    const r = runTollgate(['import-litellm', '--from', dup], { env: { DATABASE_URL: target } });
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /import-litellm: .*(unique|duplicate|constraint)/i);
    assert.doesNotMatch(r.stderr, /Sanitizer|runtime error/, r.stderr);
    assert.equal(psql(target, 'SELECT (SELECT COUNT(*) FROM keys) + (SELECT COUNT(*) FROM users)'), '0');
  });
});
