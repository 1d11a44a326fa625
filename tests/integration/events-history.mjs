// `nestc conformance --events-history N`: `events` reports an exact count and only the N most recent payloads,
// so a benchmark that emits without end does not grow the service without bound.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startNestc, raw, frame, rssKiB, WRAPPED } from './harness.mjs';

const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR || 1);
const event = (pattern, data) => frame(JSON.stringify({ pattern, data }));
const req = (pattern, data, id) => frame(JSON.stringify({ pattern, data, id }));

// Asks `events` for a route on connection c and returns the reply's response.
async function eventsOf(c, route, id) {
  const from = c.received().length;
  await c.write(req('events', route, id));
  assert.ok(await c.waitFor((x) => x.received().includes(`"id":"${id}"`, from), 10000 * factor), `${id} answered`);
  const text = c.received().slice(from);
  return JSON.parse(text.slice(text.indexOf('#') + 1)).response;
}

test('the count stays exact, payloads keep the most recent N in arrival order', async () => {
  const srv = await startNestc(['--events-history', '3']);
  try {
    const c = await raw(srv.port);
    let wire = '';
    for (let i = 0; i < 10; i++) wire += event('notification', { i });
    await c.write(wire);
    // events on one connection are handled in order, before the query that follows them
    const r = await eventsOf(c, 'notification', 'q1');
    assert.equal(r.count, 20, 'two handlers, ten events');
    assert.deepStrictEqual(r.payloads, [{ i: 7 }, { i: 8 }, { i: 9 }]);
    const none = await eventsOf(c, 'never_emitted', 'q2');
    assert.deepStrictEqual(none, { count: 0, payloads: [] });
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('--events-history 0 keeps no payloads, only the count', async () => {
  const srv = await startNestc(['--events-history', '0']);
  try {
    const c = await raw(srv.port);
    await c.write(event('user_created', 'a') + event('user_created', 'b'));
    assert.deepStrictEqual(await eventsOf(c, 'user_created', 'q'), { count: 2, payloads: [] });
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('by default at most 1,000 payloads: memory stays flat while events keep coming', async () => {
  const srv = await startNestc([]);
  try {
    const c = await raw(srv.port);
    const n = WRAPPED ? 3000 : 20000;
    const payload = 'x'.repeat(1024);
    const batch = event('user_created', payload).repeat(1000);
    const round = async (id, total) => {
      for (let i = 0; i < n / 1000; i++) await c.write(batch);
      const r = await eventsOf(c, 'user_created', id);
      assert.equal(r.count, total, 'the count is exact');
      assert.equal(r.payloads.length, 1000);
    };
    // The first round fills the history and lets the allocator and buffers reach their working size; memory
    // is compared across the second: keeping every payload would add n more (20 MB and more), a bounded
    // history adds nothing.
    await round('first', n);
    const before = rssKiB(srv.proc.pid);
    await round('second', 2 * n);
    const grown = rssKiB(srv.proc.pid) - before;
    // AddressSanitizer holds freed memory in quarantine, so RSS says nothing about what is kept there
    const sanitized = readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8').includes('libasan');
    if (!WRAPPED && !sanitized) assert.ok(grown < 8 * 1024, `RSS grew by ${grown} KiB over the second ${n} events`);
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
