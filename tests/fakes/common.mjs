// What the fake upstreams share: an HTTP server that reads each request's whole body before its
// handler runs and can close with its connections still open, and the small wire helpers several
// fakes need (float32 base64 vectors, the character-count token estimate, JSON parsing).

import http from 'node:http';
import { pathToFileURL } from 'node:url';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** True when the module with this import.meta.url is the script node was started with. */
export function isMain(moduleUrl) {
  return Boolean(process.argv[1]) && moduleUrl === pathToFileURL(process.argv[1]).href;
}

/** float32 little-endian bytes of a vector, base64 — OpenAI's `encoding_format: "base64"`. */
export function floatsToBase64(vec) {
  const buf = Buffer.alloc(vec.length * 4);
  vec.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}

/** ceil(characters of the messages' string contents / 4): the fakes' prompt token count. */
export function stringContentTokens(messages) {
  let chars = 0;
  for (const m of messages || []) if (typeof m.content === 'string') chars += m.content.length;
  return Math.ceil(chars / 4);
}

/** The parsed JSON of a body (Buffer or string), or null when it is empty or not JSON. */
export function parseJson(raw) {
  if (raw.length === 0) return null;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return null;
  }
}

/**
 * Starts an HTTP server on host:port (0 = any free port) that calls `onRequest(req, res, raw)`
 * once the request's body (`raw`, a Buffer) has arrived. A handler that throws or rejects is
 * reported on stderr under `name` and its response destroyed, so a bug in a fake fails the test
 * that hit it instead of hanging it. With `unref`, open connections do not keep the process
 * alive. Returns { server, url, port, close() }; close() destroys open connections first.
 */
export async function startFakeServer({ port = 0, host = '127.0.0.1', unref = false, name = 'fake upstream', onRequest }) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      Promise.resolve()
        .then(() => onRequest(req, res, Buffer.concat(chunks)))
        .catch((err) => {
          console.error(`${name} handler error:`, err);
          if (!res.headersSent) res.writeHead(599);
          res.destroy();
        });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    if (unref) s.unref();
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const actual = server.address().port;
  return {
    server,
    url: `http://${host}:${actual}`,
    port: actual,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
  };
}
