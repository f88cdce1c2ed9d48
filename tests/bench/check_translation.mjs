// tests/bench/check_translation.mjs — checks, before any load, that what Tollgate answers for the
// translated models is a valid OpenAI reply carrying what the mock Anthropic upstream sent.
//   node check_translation.mjs json anthropic-response.json < reply   (bench-anthropic)
//   node check_translation.mjs sse  anthropic-stream.sse    < reply   (bench-anthropic-stream)
// Exits 0 when the reply is right; otherwise prints what is wrong and exits 1.
import { readFileSync } from 'node:fs';

const [mode, fixturePath] = process.argv.slice(2);
const reply = readFileSync(0, 'utf8');
const problems = [];
const expect = (ok, what) => { if (!ok) problems.push(what); };
const isCount = (x) => Number.isInteger(x) && x >= 0;

// What the OpenAI usage must be (providers.md §3.3): prompt = input + cache writes + cache reads.
const openaiUsage = (u) => {
  const prompt = u.input_tokens + (u.cache_creation_input_tokens || 0) + (u.cache_read_input_tokens || 0);
  return { prompt_tokens: prompt, completion_tokens: u.output_tokens, total_tokens: prompt + u.output_tokens,
    cached_tokens: u.cache_read_input_tokens || 0 };
};

if (mode === 'json') {
  const a = JSON.parse(readFileSync(fixturePath, 'utf8'));
  const want = openaiUsage(a.usage);
  let o = null;
  try { o = JSON.parse(reply); } catch (e) { problems.push(`not JSON (${e.message})`); }
  if (o) {
    expect(o.object === 'chat.completion', `object is ${JSON.stringify(o.object)}, not "chat.completion"`);
    expect(typeof o.id === 'string' && o.id.length > 0, 'no id');
    expect(isCount(o.created), 'created is not a non-negative integer');
    expect(typeof o.model === 'string' && o.model.length > 0, 'no model');
    const c = Array.isArray(o.choices) && o.choices.length === 1 ? o.choices[0] : null;
    expect(c !== null, 'choices is not an array of one choice');
    if (c) {
      expect(c.index === 0, 'choices[0].index is not 0');
      expect(c.message?.role === 'assistant', 'message.role is not "assistant"');
      expect(c.message?.content === a.content[0].text, 'message.content is not the upstream text');
      expect(!c.message?.tool_calls?.length, 'unexpected tool_calls');
      expect(c.finish_reason === 'stop', `finish_reason is ${JSON.stringify(c.finish_reason)}, not "stop" (end_turn)`);
    }
    const u = o.usage || {};
    expect(u.prompt_tokens === want.prompt_tokens, `usage.prompt_tokens ${u.prompt_tokens}, want ${want.prompt_tokens}`);
    expect(u.completion_tokens === want.completion_tokens, `usage.completion_tokens ${u.completion_tokens}, want ${want.completion_tokens}`);
    expect(u.total_tokens === want.total_tokens, `usage.total_tokens ${u.total_tokens}, want ${want.total_tokens}`);
    expect(u.prompt_tokens_details?.cached_tokens === want.cached_tokens,
      `usage.prompt_tokens_details.cached_tokens ${u.prompt_tokens_details?.cached_tokens}, want ${want.cached_tokens}`);
  }
} else if (mode === 'sse') {
  // The text deltas the fixture sends, in order.
  const fixture = readFileSync(fixturePath, 'utf8');
  const wantText = fixture.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)))
    .filter((d) => d.type === 'content_block_delta' && d.delta?.type === 'text_delta').map((d) => d.delta.text).join('');
  const events = reply.replace(/\r\n?/g, '\n').split('\n\n').map((e) => e.trim()).filter(Boolean);
  expect(events.length > 0, 'empty stream');
  expect(events[events.length - 1] === 'data: [DONE]', 'the last event is not "data: [DONE]"');
  let text = '';
  let finishes = 0;
  let role = false;
  for (const e of events.slice(0, -1)) {
    const data = e.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    let c;
    try { c = JSON.parse(data); } catch { problems.push(`event is not JSON: ${e.slice(0, 120)}`); continue; }
    if (c.object !== 'chat.completion.chunk') { problems.push(`chunk object is ${JSON.stringify(c.object)}`); continue; }
    for (const ch of c.choices || []) {
      if (ch.delta?.role === 'assistant') role = true;
      if (typeof ch.delta?.content === 'string') text += ch.delta.content;
      if (ch.finish_reason != null) {
        finishes++;
        expect(ch.finish_reason === 'stop', `finish_reason ${JSON.stringify(ch.finish_reason)}, not "stop"`);
      }
    }
  }
  expect(role, 'no chunk with delta.role "assistant"');
  expect(text === wantText, `content deltas ${JSON.stringify(text.slice(0, 100))}, want ${JSON.stringify(wantText)}`);
  expect(finishes === 1, `${finishes} chunks with a finish_reason, want 1`);
} else {
  console.error('usage: node check_translation.mjs json|sse FIXTURE < reply');
  process.exit(2);
}

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
