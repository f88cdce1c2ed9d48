// HTTP/2 with prior knowledge over cleartext (h2c): the same API on the same port.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { FAKE_REPLY } from '../fakes/openai-upstream.mjs';
import { startStack, sseEvents, sseJson, streamText, assertHealthyThenCleanExit, MASTER_KEY, openAIErrorShapeProblem } from '../lib/harness.mjs';

let s;
let session;

before(async () => {
  s = await startStack();
});
after(async () => {
  if (session && !session.destroyed) session.destroy();
  if (s) await s.close();
});

function connect() {
  return new Promise((resolve, reject) => {
    const c = http2.connect(s.url);
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

/** One h2 request on `session`: resolves { status, headers, body (Buffer), text, json }. */
function h2request(sess, headers, body, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const st = sess.request(headers);
    const chunks = [];
    let resHeaders = null;
    const timer = setTimeout(() => {
      st.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`h2 request ${headers[':path']} timed out`));
    }, timeoutMs);
    st.on('response', (h) => {
      resHeaders = h;
    });
    st.on('data', (d) => chunks.push(d));
    st.on('end', () => {
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      let json;
      try {
        json = JSON.parse(buf.toString('utf8'));
      } catch {
        json = undefined;
      }
      resolve({ status: resHeaders && resHeaders[':status'], headers: resHeaders, body: buf, text: buf.toString('utf8'), json });
    });
    st.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) st.end(typeof body === 'string' ? body : JSON.stringify(body));
    else st.end();
  });
}

test('h2c prior knowledge: GET /v1/models', async () => {
  session = await connect();
  const r = await h2request(session, { ':method': 'GET', ':path': '/v1/models', authorization: `Bearer ${MASTER_KEY}` });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'list');
  assert.ok(r.json.data.some((m) => m.id === 'gpt-test'));
});

test('h2c: auth failure is a 401 OpenAI error', async () => {
  const r = await h2request(session, { ':method': 'GET', ':path': '/v1/models' });
  assert.equal(r.status, 401);
  assert.equal(openAIErrorShapeProblem(r.json), null);
});

test('h2c: non-stream chat completion', async () => {
  const r = await h2request(
    session,
    { ':method': 'POST', ':path': '/v1/chat/completions', authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
    { model: 'gpt-test', messages: [{ role: 'user', content: 'hi over h2' }] },
  );
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, FAKE_REPLY);
  assert.equal(r.text, s.fake.stats.last['/v1/chat/completions'].sentText);
});

test('h2c: streamed chat completion, byte-identical, [DONE]', async () => {
  const r = await h2request(
    session,
    { ':method': 'POST', ':path': '/v1/chat/completions', authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
    { model: 'gpt-test', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream over h2' }] },
  );
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
  assert.equal(streamText(r.text), FAKE_REPLY);
  assert.equal(sseEvents(r.text).at(-1).data, '[DONE]');
  assert.deepEqual(sseJson(r.text).at(-1).choices, []);
  assert.equal(r.text, s.fake.stats.last['/v1/chat/completions'].sentText);
});

test('h2c: 20 concurrent streams on one connection', async () => {
  const hdr = { ':method': 'POST', ':path': '/v1/chat/completions', authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' };
  const rs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => h2request(session, hdr, { model: 'gpt-test', stream: true, user: `h2-${i}`, messages: [{ role: 'user', content: `n${i}` }] })),
  );
  for (const r of rs) {
    assert.equal(r.status, 200);
    assert.equal(streamText(r.text), FAKE_REPLY);
    assert.equal(sseEvents(r.text).at(-1).data, '[DONE]');
  }
  session.close();
});

test('gateway still healthy, exits 0 on SIGTERM, no sanitizer finding, no secret in its output', async () => {
  await assertHealthyThenCleanExit(s.tg, assert);
});
