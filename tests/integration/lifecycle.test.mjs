// Process lifecycle: SIGTERM drains live streams then exits 0; `tollgate check-config`.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startFakeOpenAI, FAKE_REPLY } from '../fakes/openai-upstream.mjs';
import {
  startStack, startTollgate, runTollgate, readSSE, request, connectRefused, streamText, makeTempDir,
  gatewayConfig, MASTER_KEY, UPSTREAM_KEY, sleep,
} from '../lib/harness.mjs';

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

describe('SIGTERM', () => {
  test('drains a live stream, refuses new connections, exits 0', { timeout: 30000 }, async () => {
    const s = await startStack();
    cleanup.push(() => s.close());
    let sentSignal = false;
    let tSignal = 0;
    const streamP = readSSE(`${s.v1}/chat/completions`, {
      timeoutMs: 20000,
      body: { model: 'gpt-slow', stream: true, messages: [{ role: 'user', content: 'drain me' }] },
      // hook: on the first chunk, signal the gateway (does not abort the client)
      abortAfter: (d) => {
        if (!sentSignal && d.toString('utf8').includes('data:')) {
          sentSignal = true;
          tSignal = Date.now();
          s.tg.proc.kill('SIGTERM');
        }
        return false;
      },
    });

    let streamDone = false;
    streamP.then(() => (streamDone = true), () => (streamDone = true));

    // While the stream is still running, new connections must be refused.
    let refusedAt = null;
    const refusedP = (async () => {
      while (!sentSignal && !streamDone) await sleep(10);
      if (!sentSignal) return false;
      const deadline = Date.now() + 1500;
      while (Date.now() < deadline) {
        if (await connectRefused(s.tg.port, '127.0.0.1', 300)) {
          refusedAt = Date.now();
          return true;
        }
        await sleep(25);
      }
      return false;
    })();

    const r = await streamP;
    const refused = await refusedP;
    assert.equal(sentSignal, true, 'never saw the first chunk');
    assert.equal(r.status, 200);
    assert.equal(r.complete, true, `stream cut by SIGTERM: ${r.error}`);
    assert.equal(streamText(r.text), FAKE_REPLY);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal(refused, true, 'new connections were still accepted after SIGTERM');
    assert.ok(refusedAt < r.tEnd, 'listener closed only after the stream ended (should close at once)');

    const code = await s.tg.stop('SIGTERM', 20000); // already signalled: just waits
    assert.deepEqual(s.tg.sanitizerReport(), [], `exit ${code}; sanitizer findings:\n${s.tg.sanitizerDigest()}`);
    assert.equal(code, 0, `exit ${code}; stderr:\n${s.tg.stderr().slice(-6000)}`);
    assert.ok(r.tEnd - tSignal > 400, 'the stream really was live when the signal arrived');
  });

  test('an idle gateway exits 0 promptly', async () => {
    const s = await startStack();
    cleanup.push(() => s.close());
    const t0 = Date.now();
    const code = await s.tg.stop('SIGTERM', 10000);
    assert.deepEqual(s.tg.sanitizerReport(), [], `exit ${code}; sanitizer findings:\n${s.tg.sanitizerDigest()}`);
    assert.equal(code, 0, s.tg.stderr().slice(-6000));
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });
});

describe('tollgate check-config', () => {
  test('good config → exit 0, no secret printed', async () => {
    const fake = await startFakeOpenAI();
    cleanup.push(() => fake.close());
    const dir = makeTempDir();
    const file = path.join(dir, 'good.yaml');
    fs.writeFileSync(file, gatewayConfig({ upstreamUrl: fake.url }));
    const r = runTollgate(['check-config', file]);
    assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    const out = r.stdout + r.stderr;
    assert.ok(!out.includes(MASTER_KEY), 'master key printed');
    assert.ok(!out.includes(UPSTREAM_KEY), 'upstream key printed');
  });

  test('broken YAML → non-zero exit with FILE:LINE:COL', async () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'broken.yaml');
    fs.writeFileSync(file, 'model_list:\n  - model_name: "x"\n    litellm_params: {model: "openai/ok", api_key: [unclosed\ngeneral_settings:\n  master_key: "sk-test-master"\n');
    const r = runTollgate(['check-config', file]);
    assert.notEqual(r.code, 0, `exit ${r.code}`);
    assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
    const out = r.stdout + r.stderr;
    const esc = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(out, new RegExp(`${esc}:\\d+:\\d+`), out);
    assert.ok(!out.includes(MASTER_KEY), 'master key printed');
  });

  test('missing file → non-zero exit naming the file', async () => {
    const file = path.join(makeTempDir(), 'absent.yaml');
    const r = runTollgate(['check-config', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.ok((r.stdout + r.stderr).includes(file));
  });

  test('a gateway with a broken config refuses to start', async () => {
    await assert.rejects(startTollgate({ config: 'model_list: [\n', readyTimeoutMs: 5000 }), /exited before becoming ready|did not answer/);
  });
});
