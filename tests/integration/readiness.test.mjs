// Readiness reports the shared-limits backend: Redis connected, or down with the failure mode in
// force (fail_open: per-instance limits, still ready; fail_closed: keyed calls refused, not ready).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTollgate, MASTER_KEY } from '../lib/harness.mjs';

const CONFIG = (extra = '') =>
  ['model_list:', '  - model_name: m', '    litellm_params: {model: mock/mock-1}', 'general_settings:', `  master_key: ${MASTER_KEY}`, extra].join('\n');

async function readiness(tg) {
  const res = await fetch(`${tg.url}/health/readiness`);
  return { status: res.status, body: await res.json() };
}

test('no Redis configured: local limits, redis null', async () => {
  const tg = await startTollgate({ config: CONFIG() });
  try {
    const r = await readiness(tg);
    assert.equal(r.status, 200);
    assert.equal(r.body.redis, null);
    assert.equal(r.body.limits, 'local');
    assert.equal(r.body.db, 'connected');
  } finally {
    await tg.stop();
  }
});

test('Redis unreachable with fail_open: ready, limits fall back to local', async () => {
  const tg = await startTollgate({ config: CONFIG(), env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  try {
    const r = await readiness(tg);
    assert.equal(r.status, 200);
    assert.equal(r.body.redis, 'unavailable');
    assert.equal(r.body.limits, 'local (fail_open)');
  } finally {
    await tg.stop();
  }
});

test('Redis unreachable with fail_closed: not ready (503)', async () => {
  const tg = await startTollgate({
    config: CONFIG('tollgate_settings:\n  limits_failure_mode: fail_closed'),
    env: { REDIS_URL: 'redis://127.0.0.1:1' },
  });
  try {
    const r = await readiness(tg);
    assert.equal(r.status, 503);
    assert.equal(r.body.status, 'unhealthy');
    assert.equal(r.body.redis, 'unavailable');
  } finally {
    await tg.stop();
  }
});

test('Redis reachable: connected', { skip: !process.env.TEST_REDIS_URL && 'TEST_REDIS_URL is not set' }, async () => {
  const tg = await startTollgate({ config: CONFIG(), env: { REDIS_URL: process.env.TEST_REDIS_URL } });
  try {
    let r;
    for (let i = 0; i < 50; i++) { /* the per-loop connections come up asynchronously */
      r = await readiness(tg);
      if (r.body.redis === 'connected') break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.equal(r.status, 200);
    assert.equal(r.body.redis, 'connected');
    assert.equal(r.body.limits, 'redis');
  } finally {
    await tg.stop();
  }
});
