// foreign-lib.mjs — the side-by-side harness shared by mqtt-foreign.mjs, nats-foreign.mjs and redis-foreign.mjs:
// a plain broker client (the script's own) publishes bodies no NestJS client would send, while a NestJS client
// (NestDriver) asks the conformance server's `events` request what the `notification` handlers saw and checks
// that normal requests still succeed. Each script keeps its publisher, its reply listener and what its broker's
// NestJS server defines as the outcome; the tables of cases that hold on every broker are here.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { NestDriver } from './drivers.mjs';
import { scaled } from './timing.mjs';

// The --url argument (exits with `usage` when it is missing), and a NestJS client on that broker.
export function openHarness(usage) {
  const { values: args } = parseArgs({ options: { url: { type: 'string' } } });
  if (!args.url) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return { url: new URL(args.url), nest: new NestDriver(args.url) };
}

export const ok = (what) => console.log(`ok: ${what}`);
// Every case is checked, and the failures listed together at the end (one divergence should not hide another).
const failures = [];
export async function check(what, fn) {
  try {
    await fn();
    ok(what);
  } catch (e) {
    failures.push(what);
    console.log(`FAIL: ${what}: ${e.message}`);
  }
}
// After the broker clients are closed: list the failed cases and exit 1 if there are any.
export async function finish(nest) {
  await nest.close();
  if (failures.length) {
    console.log(`${failures.length} case(s) failed:\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
}

export const b = (text) => Buffer.from(text, 'utf8');
export const u8 = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? b(p) : Buffer.from(p))));
export const tag = randomUUID();

// A request from the NestJS client: exactly one value, no error.
export async function request(nest, pattern, data) {
  const r = await nest.send(pattern, data, { timeoutMs: scaled(10000) });
  assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
  assert.equal(r.values.length, 1, JSON.stringify(r.values));
  return r.values[0];
}

export async function waitFor(what, check, ms = scaled(10000)) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await check();
    if (r !== undefined) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

// Replies to the plain client's own requests, by id: `replies.add(where, payload)` from the script's listener
// records { where, m } for a JSON reply with a string id (where = the topic, subject or channel it came on).
export function replyLog() {
  const replies = new Map();
  replies.add = (where, payload) => {
    let m;
    try {
      m = JSON.parse(Buffer.from(payload).toString());
    } catch {
      return;
    }
    if (m && typeof m === 'object' && typeof m.id === 'string') (replies.get(m.id) ?? replies.set(m.id, []).get(m.id)).push({ where, m });
  };
  replies.done = (id) => replies.get(id)?.some(({ m }) => m.isDisposed);
  return replies;
}

// Events on `notification` where the server falls back to the decoded string for a body that is not JSON
// (ServerMqtt, ServerRedis): [what, body, data the handler sees].
export const fallbackEvents = () => [
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

// Publishes `events` ([what, body, data the handler sees | REFUSED]) to `notification`, then checks the data each
// handler call saw. Without a fence, waits until the handlers have counted them all. With `fence` (a JSON string,
// published last on the same connection: the broker keeps one client's order, so when the handler has seen it,
// the server has seen every body before it), waits for it and checks that the REFUSED bodies reached no handler.
export const REFUSED = Symbol('refused');
export async function checkEvents(nest, events, publish, { fence } = {}) {
  const before = await request(nest, 'events', 'notification');
  for (const [, body] of events) await publish('notification', body);
  if (fence !== undefined) await publish('notification', b(JSON.stringify(fence)));
  const accepted = events.filter(([, , data]) => data !== REFUSED);
  const n = accepted.length + (fence !== undefined ? 1 : 0);
  const after = await waitFor('the notification events', async () => {
    const r = await request(nest, 'events', 'notification');
    return (fence !== undefined ? r.payloads.includes(fence) : r.count >= before.count + 2 * n) ? r : undefined;
  });
  // `notification` has two handlers: `count` counts handler calls, `payloads` has one entry per event
  if (fence === undefined) assert.equal(after.count, before.count + 2 * n, 'each foreign event reached both handlers once');
  else
    await check(`refused bodies (${events.filter(([, , d]) => d === REFUSED).map(([w]) => w).join(', ')}) reach no handler`, () =>
      assert.equal(after.count, before.count + 2 * n, 'handler calls'),
    );
  const got = after.payloads.slice(-n, fence !== undefined ? -1 : undefined);
  for (const [i, [what, , want]] of accepted.entries())
    await check(`event: ${what} → data ${JSON.stringify(want)}`, () =>
      assert.deepStrictEqual(got[i], want, `the handler saw ${JSON.stringify(got[i])}`),
    );
}

// Requests from the plain client: an id and `pattern`/`data` make a request, answered on the reply destination.
// `routedBy` names what routes a body without a pattern (topic, subject, channel).
const binaryish = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('') + '\ufffd\uffff';
export const echoRequests = (routedBy) => [
  ['code units 0..255 in data (JSON-escaped)', b(JSON.stringify({ id: `a-${tag}`, pattern: 'echo', data: binaryish })), `a-${tag}`, binaryish],
  ['a Buffer as JSON in data', b(JSON.stringify({ id: `b-${tag}`, pattern: 'echo', data: Buffer.from([0, 0xff, 0xfe]) })), `b-${tag}`, { type: 'Buffer', data: [0, 255, 254] }],
  ['raw ff fe bytes in data (not UTF-8)', u8(`{"id":"c-${tag}","pattern":"echo","data":"`, [0xff, 0xfe], 'z"}'), `c-${tag}`, '\ufffd\ufffdz'],
  [`data only, no pattern (the ${routedBy} routes it)`, b(JSON.stringify({ id: `d-${tag}`, data: [1, 2] })), `d-${tag}`, [1, 2]],
];

// Publishes `requests` ([what, body, id, value]) to `echo` and checks each is echoed, once, without an error;
// with `replyOn`, that every reply came there.
export async function checkRequests(requests, replies, publishEcho, { replyOn } = {}) {
  for (const [, body] of requests) await publishEcho(body);
  for (const [what, , id, value] of requests) {
    await check(`request: ${what} → echoed`, async () => {
      const msgs = await waitFor(`the reply to "${what}"`, async () => (replies.done(id) ? replies.get(id) : undefined));
      if (replyOn !== undefined) for (const { where } of msgs) assert.equal(where, replyOn);
      const values = msgs.filter(({ m }) => m.response !== undefined && m.response !== null).map(({ m }) => m.response);
      assert.equal(msgs.find(({ m }) => m.err != null)?.m.err, undefined, `${what}: no error`);
      assert.deepStrictEqual(values, [value], `${what}: the reply`);
    });
  }
}

// Bodies on `echo` that are not requests, then a request after them on the same connection: the broker keeps one
// client's order, so the server has seen the foreign bodies by the time it answers this. `more` adds checks.
export const unhandledBodies = () => [
  ['non-JSON text', b(`plain ${tag}`)],
  ['not UTF-8', Buffer.from([0xff, 0xfe, 0xfd])],
  ['empty body', Buffer.alloc(0)],
  ['JSON without pattern/data', b(JSON.stringify({ id: `e-${tag}` }))],
];
export async function checkUnhandled(unhandled, replies, publishEcho, more = () => {}) {
  for (const [, body] of unhandled) await publishEcho(body);
  const fenceId = `f-${tag}`;
  await publishEcho(b(JSON.stringify({ id: fenceId, pattern: 'echo', data: 'fence' })));
  await check(`unhandled bodies on echo (${unhandled.map(([w]) => w).join(', ')}): not answered, server still serving`, async () => {
    await waitFor('the reply to the request after the unhandled bodies', async () => (replies.done(fenceId) ? true : undefined));
    assert.equal(replies.get(`e-${tag}`), undefined, 'a body without pattern/data is not answered');
    more(fenceId);
  });
}

// And the server still serves.
export async function checkStillServing(nest) {
  await check('normal requests succeed afterwards', async () => {
    assert.equal(await request(nest, 'sum', [1, 2, 3]), 6);
    assert.deepStrictEqual(await request(nest, { cmd: 'echo' }, { tag }), { tag });
  });
}
