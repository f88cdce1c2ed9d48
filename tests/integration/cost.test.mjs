// Cost: prices from the price table (TOLLGATE_PRICES) or per-deployment overrides, the
// x-litellm-response-cost header on non-stream replies, and cost_usd in the request log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startTollgate, REPO_ROOT, MASTER_KEY } from '../lib/harness.mjs';

let tg;

before(async () => {
  tg = await startTollgate({
    config: [
      'model_list:',
      '  - model_name: priced',
      '    litellm_params: {model: mock/mock-x, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}',
      '  - model_name: from-table',
      '    litellm_params: {model: mock/mock-fast}',
      '  - model_name: unpriced',
      '    litellm_params: {model: mock/no-such-model-in-table}',
      'general_settings:',
      `  master_key: ${MASTER_KEY}`,
    ].join('\n'),
    env: { TOLLGATE_PRICES: path.join(REPO_ROOT, 'config', 'model_prices.json') },
  });
});
after(async () => {
  if (tg) await tg.stop();
});

async function chat(model, content) {
  const res = await fetch(`${tg.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }] }),
  });
  return { res, body: await res.json() };
}

/** micro-dollars, rounded up, from per-token prices in dollars */
function micros(promptTokens, completionTokens, inPrice, outPrice) {
  return Math.ceil((promptTokens * inPrice + completionTokens * outPrice) * 1e6 - 1e-9);
}

test('per-deployment prices: header equals tokens × prices, rounded up to a micro-dollar', async () => {
  const { res, body } = await chat('priced', 'a prompt of some length to make several tokens');
  assert.equal(res.status, 200);
  const u = body.usage;
  assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0);
  const want = micros(u.prompt_tokens, u.completion_tokens, 0.000001, 0.000002);
  const header = res.headers.get('x-litellm-response-cost');
  assert.ok(header, 'cost header present');
  assert.equal(Math.round(Number(header) * 1e6), want);
});

test('prices from the table; an unpriced model gets no header', async () => {
  const a = await chat('from-table', 'hello');
  assert.ok(Number(a.res.headers.get('x-litellm-response-cost')) > 0, 'mock-fast has a table price');
  const b = await chat('unpriced', 'hello');
  assert.equal(b.res.status, 200);
  assert.equal(b.res.headers.get('x-litellm-response-cost'), null);
});

test('the request log carries cost_usd', async () => {
  await chat('priced', 'log me');
  await new Promise((r) => setTimeout(r, 200));
  const lines = tg.logs().filter((l) => l.model === 'priced');
  assert.ok(lines.length >= 1);
  assert.ok(lines.every((l) => typeof l.cost_usd === 'number' && l.cost_usd > 0), JSON.stringify(lines));
});
