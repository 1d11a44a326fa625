// The conformance cases (DESIGN.md §4), written once and run through any driver (see drivers.mjs).
//
// A driver has:
//   send(pattern, data, {timeoutMs}) → Promise<{values, error?, failure?}>
//       values  : every reply value, in order
//       error   : the error reply (the server's `err`), exactly as received
//       failure : a local failure {kind: 'timeout'|'other', message}; no reply error, no values expected
//   emit(pattern, data) → Promise<void>  (resolves once the transport accepted the event)
//   maxPayloadBytes (optional): cases with larger payloads are skipped for that driver.
//
// Every case is {name, run(driver), payloadBytes?}. Cases may run against a server shared with other
// runs, so event checks compare counts before and after, using payloads unique to this run.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

const NO_HANDLER = 'There is no matching message handler defined in the remote service.';

// Assertion helper: the request completed normally with exactly these values.
export async function expectValues(driver, pattern, data, expected, opts = {}) {
  const r = await driver.send(pattern, data, opts);
  assert.equal(r.failure, undefined, `local failure: ${r.failure?.message}`);
  assert.equal(r.error, undefined, `unexpected error reply: ${JSON.stringify(r.error)}`);
  assert.deepStrictEqual(r.values, expected);
  return r;
}

// Assertion helper: the request ended with this error reply.
export async function expectError(driver, pattern, data, expectedError) {
  const r = await driver.send(pattern, data);
  assert.equal(r.failure, undefined, `local failure: ${r.failure?.message}`);
  assert.deepStrictEqual(r.error, expectedError);
  return r;
}

// Both registrations of a handler: the object pattern and the plain string.
const forms = (name) => [
  [`{cmd:'${name}'}`, { cmd: name }],
  [`'${name}'`, name],
];

// Query `events` until `want(result)` holds or the deadline passes. Events and queries may travel on
// different connections (the CLI opens one per command), so an event may be processed slightly later.
async function pollEvents(driver, eventRoute, want, deadlineMs = 3000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await driver.send({ cmd: 'events' }, eventRoute);
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    const v = r.values[0];
    if (want(v) || Date.now() > end) return v;
    await new Promise((res) => setTimeout(res, 50));
  }
}

const cases = [];
const add = (name, run, extra = {}) => cases.push({ name, run, ...extra });

for (const [label, p] of forms('sum')) add(`sum ${label} [1,2,3] → 6`, (d) => expectValues(d, p, [1, 2, 3], [6]));
for (const [label, p] of forms('asyncSum'))
  add(`asyncSum ${label} [4,5,6] → 15`, (d) => expectValues(d, p, [4, 5, 6], [15]));
for (const [label, p] of forms('streamSum'))
  add(`streamSum ${label} [1.5,2.5] → 4 (one-value stream)`, (d) => expectValues(d, p, [1.5, 2.5], [4]));
for (const [label, p] of forms('streaming')) {
  add(`streaming ${label} [1,2,3] → 1,2,3`, (d) => expectValues(d, p, [1, 2, 3], [1, 2, 3]));
  add(`streaming ${label} [] → no values`, (d) => expectValues(d, p, [], []));
}
for (const [label, p] of forms('exception')) {
  add(`exception ${label} 'bad' → {status,message}`, (d) =>
    expectError(d, p, 'bad', { status: 'error', message: 'bad' }));
  add(`exception ${label} object → the object itself`, (d) =>
    expectError(d, p, { code: 42, message: 'x' }, { code: 42, message: 'x' }));
}

// echo: values that stress JSON and the TCP length prefix (UTF-16 units ≠ bytes for non-ASCII).
const nested = { a: [1, 2.5, -3, true, false, null], b: { c: { d: 'e', '': [] } }, 'k"ey\\': 'v\n\t"' };
const bigString = 'x'.repeat(1024 * 1024); // 1 MiB
const bigArray = Array.from({ length: 155_000 }, (_, i) => `item${i % 1000}`); // ~1.5 MB of JSON
const echoes = [
  ['nested object', nested],
  ['non-ASCII', 'héllo wörld ✓ 日本語'],
  ['emoji (UTF-16 surrogate pairs)', '😀🎉'],
  ['1 MiB string', bigString],
  ['1.5 MB array', bigArray],
];
for (const [label, p] of forms('echo')) {
  for (const [what, value] of echoes) {
    const bytes = Buffer.byteLength(JSON.stringify(value));
    add(`echo ${label} ${what}`, (d) => expectValues(d, p, value, [value]), { payloadBytes: bytes });
  }
}

// sleep: concurrency and out-of-order completion.
for (const [label, p] of forms('sleep')) {
  add(`sleep ${label} 200 concurrent random 0–50 ms, each gets its own value`, async (d) => {
    const ms = Array.from({ length: 200 }, () => Math.floor(Math.random() * 51));
    const rs = await Promise.all(ms.map((m) => d.send(p, m, { timeoutMs: 20000 })));
    rs.forEach((r, i) => {
      assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
      assert.deepStrictEqual(r.values, [ms[i]]);
    });
  });
  add(`sleep ${label} 300 and 10 concurrently: the 10 finishes first`, async (d) => {
    const order = [];
    const track = (m) => d.send(p, m).then((r) => (order.push(m), r));
    const [slow, fast] = await Promise.all([track(300), track(10)]);
    assert.deepStrictEqual(slow.values, [300]);
    assert.deepStrictEqual(fast.values, [10]);
    assert.deepStrictEqual(order, [10, 300]);
  });
}

// context: the route string the request matched.
for (const [label, p, route] of [
  ["{cmd:'context'}", { cmd: 'context' }, '{"cmd":"context"}'],
  ["'context'", 'context', 'context'],
]) {
  add(`context ${label} → transport and pattern ${route}`, async (d) => {
    const r = await d.send(p, { any: 'thing' });
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    assert.equal(r.values.length, 1);
    const v = r.values[0];
    assert.ok(['tcp', 'tls'].includes(v.transport), `transport: ${v.transport}`);
    if (d.scheme) assert.equal(v.transport, d.scheme);
    assert.equal(v.pattern, route);
  });
}

// events: notification has two handlers (count +2 per event), user_created one.
for (const [label, p, route, perEvent, n] of [
  ["'notification'", 'notification', 'notification', 2, 3],
  ["{cmd:'notification'}", { cmd: 'notification' }, '{"cmd":"notification"}', 2, 3],
  ["'user_created'", 'user_created', 'user_created', 1, 1],
  ["{cmd:'user_created'}", { cmd: 'user_created' }, '{"cmd":"user_created"}', 1, 1],
]) {
  add(`events ${label}: ${n} event(s) → count +${perEvent * n}, payloads in order`, async (d) => {
    const run = randomUUID();
    const payloads = Array.from({ length: n }, (_, i) => ({ run, i, text: `é${i}` }));
    const before = await pollEvents(d, route, () => true);
    for (const x of payloads) await d.emit(p, x);
    const want = before.count + perEvent * n;
    const after = await pollEvents(d, route, (v) => v.count >= want);
    assert.equal(after.count, want);
    assert.deepStrictEqual(after.payloads.filter((x) => x?.run === run), payloads);
  });
}

for (const [label, p] of [
  ["{cmd:'nope'}", { cmd: 'nope' }],
  ["'nope'", 'nope'],
]) {
  add(`unknown pattern ${label} → no-handler error`, (d) => expectError(d, p, 1, NO_HANDLER));
}

add('timeout: sleep 2000 with a 300 ms client timeout times out', async (d) => {
  const t0 = Date.now();
  const r = await d.send({ cmd: 'sleep' }, 2000, { timeoutMs: 300 });
  assert.equal(r.error, undefined, `unexpected error reply: ${JSON.stringify(r.error)}`);
  assert.deepStrictEqual(r.values, []);
  assert.equal(r.failure?.kind, 'timeout', `expected a timeout, got ${JSON.stringify(r.failure)}`);
  assert.ok(Date.now() - t0 < 1900, 'the timeout fired too late');
});

export { cases, NO_HANDLER };
