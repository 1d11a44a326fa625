// Hostile peers against `nestc conformance` with its default buffer limits (server-probes.mjs covers the
// framing probes with a small limit): many connections at once, a peer that sends large requests and
// never reads its replies, shutdown with live connections. For each: the server survives, its memory
// stays bounded, other peers keep being served, the offending connection is closed with a logged reason.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { startNestc, raw, frame, sleep, rssKiB, scaled } from './harness.mjs';

const req = (pattern, data, id) => frame(JSON.stringify({ pattern, data, id }));

async function served(port, id = 'alive') {
  const c = await raw(port);
  await c.write(req('sum', [20, 22], id));
  const ok = await c.waitFor((x) => x.received().includes(`"${id}"`), scaled(5000));
  c.sock.destroy();
  return ok;
}

test('2,000 concurrent connections, each answered; memory bounded; all closed cleanly', async () => {
  const srv = await startNestc();
  try {
    const limit = Number(execSync('sh -c "ulimit -n"').toString().trim()) || 1024;
    const n = Math.min(2000, limit - 100);
    const before = rssKiB(srv.proc.pid);
    const conns = [];
    for (let i = 0; i < n; i++) conns.push(raw(srv.port));
    const cs = await Promise.all(conns);
    await Promise.all(cs.map((c, i) => c.write(req('sum', [i, 1], `c${i}`))));
    for (let i = 0; i < n; i++) {
      assert.ok(await cs[i].waitFor((x) => x.received().includes(`"c${i}"`), scaled(10000)), `connection ${i} answered`);
      assert.ok(cs[i].received().includes(`"response":${i + 1}`));
    }
    const grown = rssKiB(srv.proc.pid) - before;
    assert.ok(grown < 32 * 1024, `RSS grew by ${grown} KiB for ${n} connections`);
    for (const c of cs) c.sock.destroy();
    await sleep(200);
    assert.ok(await served(srv.port));
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a peer sending 1 MB requests and never reading: bounded memory, closed with a reason, others served', async () => {
  const srv = await startNestc(['--max-send-buffer-size', '500000']);
  try {
    const before = rssKiB(srv.proc.pid);
    const p = await raw(srv.port);
    p.sock.pause(); // never read: the replies pile up in the kernel, then in the server
    const big = 'x'.repeat(1 << 20);
    for (let i = 0; i < 40; i++) p.sock.write(req('echo', big, `big${i}`));
    const end = Date.now() + scaled(20000);
    while (Date.now() < end && !srv.stderr().includes('is not reading its responses')) {
      assert.ok(await served(srv.port), 'others are served meanwhile');
      await sleep(100);
    }
    assert.match(srv.stderr(), /is not reading its responses/);
    const grown = rssKiB(srv.proc.pid) - before;
    assert.ok(grown < 64 * 1024, `RSS grew by ${grown} KiB`);
    p.sock.resume();
    assert.ok(await p.waitFor((x) => x.closed(), scaled(5000)), 'the offending connection is closed');
    assert.ok(await served(srv.port));
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('shutdown with live connections: in-flight requests finish, every connection is closed, exit 0', async () => {
  const grace = scaled(3000);
  const srv = await startNestc(['--shutdown-timeout', String(grace)]);
  const idle = await Promise.all(Array.from({ length: 50 }, () => raw(srv.port)));
  const busy = await Promise.all(Array.from({ length: 5 }, () => raw(srv.port)));
  // the `sum` behind each `sleep` is answered once the server has read both: then the sleeps are in flight
  await Promise.all(busy.map((c, i) => c.write(req('sleep', 300, `s${i}`) + req('sum', [i], `r${i}`))));
  for (const [i, c] of busy.entries()) assert.ok(await c.waitFor((x) => x.received().includes(`"r${i}"`)));
  const t0 = Date.now();
  const code = await srv.stop();
  assert.equal(code, 0, 'graceful exit');
  assert.ok(Date.now() - t0 < grace, 'did not wait for the whole grace period');
  for (const [i, c] of busy.entries()) assert.ok(c.received().includes(`"s${i}"`), `in-flight ${i} answered`);
  for (const c of [...idle, ...busy]) assert.ok(await c.waitFor((x) => x.closed(), scaled(2000)), 'closed by the server');
});

// ---- JSON that NestJS (JSON.parse) accepts: answered as NestJS answers it, on the same connection ----
// Raw texts, not JSON.stringify: the escapes and numbers must reach the server as written.
const rawReq = (pattern, dataText, idText) => frame(`{"pattern":"${pattern}","data":${dataText},"id":${idText}}`);
const replyFrame = (responseText, idText) => frame(`{"response":${responseText},"isDisposed":true,"id":${idText}}`);

test('lone UTF-16 surrogates: echoed byte for byte as NestJS does, with another call in flight', async () => {
  const srv = await startNestc();
  try {
    const c = await raw(srv.port);
    await c.write(req('sleep', 300, 'slow'));
    await c.write(rawReq('echo', '"ab\\ud83d"', '"e1"'));
    await c.write(rawReq('echo', '["\\uDE00x","\\ud83d\\ude00","\\ude00\\ud83d"]', '"e2"'));
    await c.write(rawReq('echo', '{"\\ud800":"\\udfff"}', '"e3"'));
    await c.write(rawReq('echo', '"\\ud83d"', '"\\ud83d"')); // a lone surrogate in the id too
    const want = [
      replyFrame('"ab\\ud83d"', '"e1"'),
      replyFrame('["\\ude00x","😀","\\ude00\\ud83d"]', '"e2"'), // JSON.stringify: lowercase, pairs raw
      replyFrame('{"\\ud800":"\\udfff"}', '"e3"'),
      replyFrame('"\\ud83d"', '"\\ud83d"'),
    ];
    assert.ok(await c.waitFor((x) => x.received().includes('"slow"'), 5000), 'the call in flight is answered');
    assert.equal(c.received(), want.join('') + frame('{"response":300,"isDisposed":true,"id":"slow"}'));
    assert.ok(!c.closed(), 'connection kept');
    assert.doesNotMatch(srv.stderr(), /invalid Unicode|Could not parse/);
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('deep nesting: 3,000 levels echoed; past 10,000 the message is dropped with a log line, connection kept', async () => {
  const srv = await startNestc();
  try {
    const c = await raw(srv.port);
    const deep = (n) => '['.repeat(n) + ']'.repeat(n);
    const mixed = '[{"a":'.repeat(1500) + '1' + '}]'.repeat(1500);
    await c.write(rawReq('echo', deep(3000), '"d1"'));
    await c.write(rawReq('echo', mixed, '"d2"'));
    await c.write(rawReq('echo', deep(10001), '"d3"'));
    await c.write(req('sum', [1, 2], 'after'));
    assert.ok(await c.waitFor((x) => x.received().includes('"after"'), 5000), 'answered after the refused one');
    assert.equal(c.received(), replyFrame(deep(3000), '"d1"') + replyFrame(mixed, '"d2"') +
      frame('{"response":3,"isDisposed":true,"id":"after"}'));
    assert.ok(!c.closed(), 'connection kept');
    assert.match(srv.stderr(), /message dropped: nested deeper than 10000 levels/);
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('numbers past the double or int64 range: read as JSON.parse reads them, written as JSON.stringify', async () => {
  const srv = await startNestc();
  try {
    const c = await raw(srv.port);
    await c.write(rawReq('echo', '[1e400,-1e400,1e-400,123456789012345678901,9223372036854775807]', '"n1"'));
    await c.write(rawReq('sum', '[1e400,1]', '"n2"')); // Infinity + 1: null
    await c.write(rawReq('echo', '"x"', '1e400')); // id Infinity: a request, answered with id null
    await c.write(rawReq('sum', '[1e308,1e308]', '"n4"'));
    assert.ok(await c.waitFor((x) => x.received().includes('"n4"'), 5000));
    assert.equal(c.received(), replyFrame('[null,null,0,123456789012345680000,9223372036854776000]', '"n1"') +
      replyFrame('null', '"n2"') + replyFrame('"x"', 'null') + replyFrame('null', '"n4"'));
    assert.ok(!c.closed());
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
