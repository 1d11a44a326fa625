// redis-foreign.mjs --url redis://H:P — run by with-server.sh (nest or nestc conformance server on that broker):
// what a server does with messages that no NestJS client would send. A plain ioredis client publishes bodies of
// its own to channels the server serves; NestJS's ServerRedis defines the outcome:
//   body = JSON.parse(message) — the bytes decoded as UTF-8, U+FFFD for ill-formed ones — else the decoded
//          string itself;
//   a body that is falsy, or has neither `pattern` nor `data`, is "external": the message is an event on the
//          channel with the whole body as its data (an `id` alone does not make it a request);
//   otherwise a body with an `id` is a request, answered on `<channel>.reply`.
// The event handler of `notification` records the data it gets; the `events` request reads them back, so
// the test sees what the handler saw. A body on a request channel that is not a request is an event nobody
// handles: the server logs it and goes on. Afterwards a normal request must still succeed, and a nestc
// server must exit cleanly (with-server.sh checks that).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import Redis from 'ioredis';
import { NestDriver } from './drivers.mjs';
import { scaled } from './timing.mjs';

const { values: args } = parseArgs({ options: { url: { type: 'string' } } });
if (!args.url) {
  console.error('usage: node redis-foreign.mjs --url redis://H:P');
  process.exit(2);
}
const u = new URL(args.url);
const nest = new NestDriver(args.url);
const opts = { host: u.hostname, port: Number(u.port), lazyConnect: true, maxRetriesPerRequest: 0 };
const raw = new Redis(opts); // publishes
const sub = new Redis(opts); // receives the replies
await raw.connect();
await sub.connect();

const ok = (what) => console.log(`ok: ${what}`);
// Every case is checked, and the failures listed together at the end (one divergence should not hide another).
const failures = [];
async function check(what, fn) {
  try {
    await fn();
    ok(what);
  } catch (e) {
    failures.push(what);
    console.log(`FAIL: ${what}: ${e.message}`);
  }
}
const b = (text) => Buffer.from(text, 'utf8');
const u8 = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? b(p) : Buffer.from(p))));

async function request(pattern, data) {
  const r = await nest.send(pattern, data, { timeoutMs: scaled(10000) });
  assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
  assert.equal(r.values.length, 1, JSON.stringify(r.values));
  return r.values[0];
}

// Replies to the plain client's own requests, by id.
const replies = new Map();
sub.on('messageBuffer', (channel, payload) => {
  let m;
  try {
    m = JSON.parse(payload.toString());
  } catch {
    return;
  }
  if (m && typeof m === 'object' && typeof m.id === 'string') (replies.get(m.id) ?? replies.set(m.id, []).get(m.id)).push({ channel: String(channel), m });
});
await sub.subscribe('echo.reply');
const publish = (channel, body) => raw.publish(channel, body);

async function waitFor(what, check, ms = scaled(10000)) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await check();
    if (r !== undefined) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

// --- events: bodies published to `notification`, and the data its handler saw ----------------------------
const tag = randomUUID();
const events = [
  ['non-JSON text', b(`not json { ${tag}`), `not json { ${tag}`],
  ['not UTF-8 (ff fe)', u8([0xff, 0xfe], tag), `\ufffd\ufffd${tag}`],
  ['empty body', Buffer.alloc(0), ''],
  ['JSON object without id/pattern/data', b(JSON.stringify({ tag, a: [1, true, null] })), { tag, a: [1, true, null] }],
  ['JSON with an id but no pattern/data (still an event)', b(JSON.stringify({ id: tag, x: 1 })), { id: tag, x: 1 }],
  ['JSON string', b(JSON.stringify(`s ${tag}`)), `s ${tag}`],
  ['JSON number', b('42'), 42],
  ['JSON null', b('null'), null],
  ['JSON false', b('false'), false],
  // ill-formed UTF-8 inside a JSON string: decoded first (U+FFFD), then parsed as JSON
  ['JSON object with raw ff bytes in a string', u8(`{"tag":"${tag}","t":"a`, [0xff], 'b', [0xc3], '"}'), { tag, t: 'a\ufffdb\ufffd' }],
  ['JSON event envelope with raw ff in data', u8(`{"pattern":"notification","data":"${tag}`, [0xff], '"}'), `${tag}\ufffd`],
  ['lone surrogate in WTF-8 (ed a0 80)', u8('x', [0xed, 0xa0, 0x80], tag), `x\ufffd\ufffd\ufffd${tag}`],
];
const before = await request('events', 'notification');
for (const [, body] of events) await publish('notification', body);
const want = events.map(([, , data]) => data);
const after = await waitFor('the notification events', async () => {
  const r = await request('events', 'notification');
  return r.count >= before.count + 2 * events.length ? r : undefined;
});
// `notification` has two handlers: `count` counts handler calls, `payloads` has one entry per event
assert.equal(after.count, before.count + 2 * events.length, 'each foreign event reached both handlers once');
const got = after.payloads.slice(-events.length);
for (const [i, [what]] of events.entries())
  await check(`event: ${what} → data ${JSON.stringify(want[i])}`, () =>
    assert.deepStrictEqual(got[i], want[i], `the handler saw ${JSON.stringify(got[i])}`),
  );

// --- requests from the plain client: an id and `pattern`/`data` make a request, answered on echo.reply ----
const binaryish = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('') + '\ufffd\uffff';
const requests = [
  ['code units 0..255 in data (JSON-escaped)', b(JSON.stringify({ id: `a-${tag}`, pattern: 'echo', data: binaryish })), `a-${tag}`, binaryish],
  ['a Buffer as JSON in data', b(JSON.stringify({ id: `b-${tag}`, pattern: 'echo', data: Buffer.from([0, 0xff, 0xfe]) })), `b-${tag}`, { type: 'Buffer', data: [0, 255, 254] }],
  ['raw ff fe bytes in data (not UTF-8)', u8(`{"id":"c-${tag}","pattern":"echo","data":"`, [0xff, 0xfe], 'z"}'), `c-${tag}`, '\ufffd\ufffdz'],
  ['data only, no pattern (the channel routes it)', b(JSON.stringify({ id: `d-${tag}`, data: [1, 2] })), `d-${tag}`, [1, 2]],
];
for (const [what, body, id, value] of requests) {
  await publish('echo', body);
}
for (const [what, , id, value] of requests) {
  await check(`request: ${what} → echoed`, async () => {
  const msgs = await waitFor(`the reply to "${what}"`, async () => {
    const ms = replies.get(id);
    return ms?.some(({ m }) => m.isDisposed) ? ms : undefined;
  });
  for (const { channel } of msgs) assert.equal(channel, 'echo.reply');
  const values = msgs.filter(({ m }) => m.response !== undefined && m.response !== null).map(({ m }) => m.response);
  assert.equal(msgs.find(({ m }) => m.err != null)?.m.err, undefined, `${what}: no error`);
  assert.deepStrictEqual(values, [value], `${what}: the reply`);
  });
}

// --- bodies on a request channel that are not requests: events, not answered ----------------------------------
const unhandled = [
  ['non-JSON text', b(`plain ${tag}`)],
  ['not UTF-8', Buffer.from([0xff, 0xfe, 0xfd])],
  ['empty body', Buffer.alloc(0)],
  ['JSON without pattern/data', b(JSON.stringify({ id: `e-${tag}` }))],
];
for (const [, body] of unhandled) await publish('echo', body);
// A request after them on the same connection: Redis keeps one client's order, so the server has seen the
// foreign bodies by the time it answers this.
const fenceId = `f-${tag}`;
await publish('echo', b(JSON.stringify({ id: fenceId, pattern: 'echo', data: 'fence' })));
await waitFor('the reply to the request after the unhandled bodies', async () => (replies.get(fenceId)?.some(({ m }) => m.isDisposed) ? true : undefined));
assert.equal(replies.get(`e-${tag}`), undefined, 'a body without pattern/data is not answered');
ok(`unhandled bodies on echo (${unhandled.map(([w]) => w).join(', ')}): not answered, server still serving`);
// --- and it still serves -----------------------------------------------------------------------------------
assert.equal(await request('sum', [1, 2, 3]), 6);
assert.deepStrictEqual(await request({ cmd: 'echo' }, { tag }), { tag });
ok('normal requests succeed afterwards');

raw.disconnect();
sub.disconnect();
await nest.close();
if (failures.length) {
  console.log(`${failures.length} case(s) failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
