// Byte-exact probes against `nestc conformance` (tcp.md §2–§5, vectors/tcp/framing-probes.txt): the same
// bytes a NestJS 12.1.1 ServerTCP was probed with, and the bad input of the foundation issue. For each
// bad peer: its connection is closed (FIN) with a log line, and other peers keep being served.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startNestc, raw, frame, sleep, rssKiB, scaled } from './harness.mjs';

let srv;
const STALL = scaled(1000); // --incomplete-timeout
test.before(async () => {
  // the stall limit grows with the time factor: a loaded machine must not turn a slow sender into a staller
  srv = await startNestc(['--max-buffer-size', '200', '--incomplete-timeout', String(STALL)]);
});
test.after(async () => {
  assert.equal(await srv.stop(), 0, 'graceful exit 0');
});

const sumReq = (data, id) => frame(JSON.stringify({ pattern: 'sum', data, id }));

// After a probe, another connection must still be served.
async function stillServing() {
  const c = await raw(srv.port);
  await c.write(sumReq([20, 22], 'alive'));
  assert.ok(await c.waitFor((x) => x.received().includes('"alive"')));
  assert.equal(c.received(), '46#{"response":42,"isDisposed":true,"id":"alive"}');
  c.sock.destroy();
}

test('pipelined two requests in one write', async () => {
  const c = await raw(srv.port);
  await c.write(sumReq([1], 'a') + sumReq([2], 'b'));
  assert.ok(await c.waitFor((x) => x.received().includes('"b"')));
  assert.equal(c.received(), '41#{"response":1,"isDisposed":true,"id":"a"}41#{"response":2,"isDisposed":true,"id":"b"}');
  c.sock.destroy();
});

test('split across writes, inside multi-byte characters', async () => {
  const c = await raw(srv.port);
  const bytes = Buffer.from(frame(JSON.stringify({ pattern: 'echo', data: 'é😀', id: 'u' })), 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    c.sock.write(bytes.subarray(i, i + 1));
    await sleep(1);
  }
  assert.ok(await c.waitFor((x) => x.received().includes('"u"')));
  assert.equal(c.received(), '45#{"response":"é😀","isDisposed":true,"id":"u"}');
  c.sock.destroy();
});

// Ill-formed UTF-8 in strings, with the length NestJS counts (its socket bytes decoded by StringDecoder,
// U+FFFD per maximal ill-formed subpart): answered as a NestJS 12.1.1 ServerTCP answered these bytes,
// byte for byte, the connection kept; also sent one byte per write (E0 80 waits for the next byte there).
test('ill-formed UTF-8 in strings: read as U+FFFD and echoed as NestJS does, connection kept', async () => {
  const B = (...a) => Buffer.concat(a.map((x) => Buffer.from(x)));
  const echo = (mid, id) => {
    const b = B('{"pattern":"echo","data":"a', mid, `b","id":"${id}"}`);
    return B(`${b.toString().length}#`, b);
  };
  const bytes = B(
    echo([0xff], 'ff'),
    echo([0xe0, 0x80], 'e0'),
    echo([0xf0, 0x9f, 0x98], 'cut'),
    echo([0xed, 0xa0, 0x80], 'sur'),
    ((b) => B(`${b.toString().length}#`, b))(B('{"pattern":"echo","data":{"k', [0xc3], '":1},"id":"key"}')),
  );
  const want =
    '46#{"response":"a\ufffdb","isDisposed":true,"id":"ff"}' +
    '47#{"response":"a\ufffd\ufffdb","isDisposed":true,"id":"e0"}' +
    '47#{"response":"a\ufffdb","isDisposed":true,"id":"cut"}' +
    '49#{"response":"a\ufffd\ufffd\ufffdb","isDisposed":true,"id":"sur"}' +
    '50#{"response":{"k\ufffd":1},"isDisposed":true,"id":"key"}';
  for (const perByte of [false, true]) {
    const c = await raw(srv.port);
    if (!perByte) await c.write(bytes);
    else {
      for (let i = 0; i < bytes.length; i++) {
        c.sock.write(bytes.subarray(i, i + 1));
        await sleep(1);
      }
    }
    assert.ok(await c.waitFor((x) => x.received().includes('"key"')));
    assert.equal(c.received(), want);
    assert.ok(!c.closed());
    c.sock.destroy();
  }
});

test('numeric and null ids are echoed with their type', async () => {
  const c = await raw(srv.port);
  await c.write(frame('{"pattern":"sum","data":[2,3],"id":7}') + frame('{"pattern":"sum","data":[1],"id":null}'));
  assert.ok(await c.waitFor((x) => x.received().includes('null}')));
  assert.equal(c.received(), '39#{"response":5,"isDisposed":true,"id":7}42#{"response":1,"isDisposed":true,"id":null}');
  c.sock.destroy();
});

test('pattern given as a JSON string, and lenient length prefixes', async () => {
  const c = await raw(srv.port);
  const body = '{"pattern":"{\\"cmd\\":\\"sum\\"}","data":[4,6],"id":"js"}';
  const padded = '{"pattern":"sum","data":[1,2],"id":"lenient"}'.padEnd(63, ' ');
  await c.write(frame(body) + `  +63xyz#${padded}` + `\n${sumReq([1], 'ws').replace(/^\d+#/, (m) => m)}`);
  assert.ok(await c.waitFor((x) => x.received().includes('"ws"')));
  assert.equal(
    c.received(),
    '43#{"response":10,"isDisposed":true,"id":"js"}47#{"response":3,"isDisposed":true,"id":"lenient"}42#{"response":1,"isDisposed":true,"id":"ws"}',
  );
  c.sock.destroy();
});

test('null and {} bodies are events without a pattern: nothing sent, connection stays open', async () => {
  const c = await raw(srv.port);
  await c.write('4#null2#{}' + sumReq([5], 'after'));
  assert.ok(await c.waitFor((x) => x.received().includes('"after"')));
  assert.equal(c.received(), frame('{"response":5,"isDisposed":true,"id":"after"}'));
  assert.ok(!c.closed());
  c.sock.destroy();
});

for (const [name, bytes] of [
  ['corrupt length', 'abc#{}'],
  ['invalid JSON', '5#{abc}'],
  ['length 0', '0#'],
  ['negative length', '-3#abc'],
  // NestJS decodes FF FE as two U+FFFD (2 units): a length counted in bytes takes in the next frame's digits
  ['invalid UTF-8, length counted in bytes', Buffer.concat([Buffer.from('12#{"x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])],
  ['ill-formed UTF-8 outside a string (invalid JSON)', Buffer.concat([Buffer.from('27#{"pattern":"echo","data":1'), Buffer.from([0xff]), Buffer.from(',"id":"i"}')])],
  ['length counted in bytes for non-ASCII', Buffer.from(`${Buffer.byteLength('{"pattern":"echo","data":"é😀","id":"b"}')}#{"pattern":"echo","data":"é😀","id":"b"}`)],
  ['oversize frame (limit 200)', frame(JSON.stringify({ pattern: 'echo', data: 'x'.repeat(300), id: 'big' }))],
  ['absurd declared length', '999999999#{'],
  ['JSON nested 100,000 deep', `${200000}#${'['.repeat(100000)}${']'.repeat(100000)}`],
]) {
  test(`${name}: FIN, no reply, others still served`, async () => {
    const c = await raw(srv.port);
    // a valid frame follows the bad one: it must not be answered
    if (typeof bytes === 'string') await c.write(bytes + sumReq([1], 'late'));
    else await c.write(Buffer.concat([bytes, Buffer.from(sumReq([1], 'late'))]));
    assert.ok(await c.waitFor((x) => x.closed(), scaled(3000)), 'connection closed');
    assert.ok(!c.received().includes('"late"'), `no reply after the bad frame: ${c.received()}`);
    c.sock.destroy();
    await stillServing();
  });
}

test('incomplete message: closed after the incomplete-message timeout (1000 ms × factor)', async () => {
  const c = await raw(srv.port);
  await c.write('50#{"pattern"');
  assert.ok(await c.waitFor((x) => x.closed(), STALL + scaled(2000)));
  const t = c.events.find((e) => e.kind === 'close' || e.kind === 'fin').t;
  assert.ok(t >= STALL - 50 && t < STALL + scaled(1500), `closed after ${t} ms (limit ${STALL} ms)`);
  await stillServing();
});

test('a slow but progressing sender is never cut off', async () => {
  const c = await raw(srv.port);
  const f = sumReq([1, 2, 3], 'slow');
  for (const ch of f) {
    await c.write(ch);
    await sleep(60); // 60 × ~40 chars ≫ the stall limit (1000 ms × factor) in total, each gap well below it
  }
  assert.ok(await c.waitFor((x) => x.received().includes('"slow"')));
  c.sock.destroy();
});

test('12,000 frames in one write followed by a request', async () => {
  const c = await raw(srv.port);
  let s = '';
  for (let i = 0; i < 12000; i++) s += frame(JSON.stringify({ pattern: 'user_created', data: i }));
  await c.write(s + sumReq([9], 'after-burst'));
  assert.ok(await c.waitFor((x) => x.received().includes('"after-burst"'), scaled(10000)));
  c.sock.destroy();
});

test('20 peers declaring huge frames and stalling do not block others; memory stays bounded', async () => {
  const before = rssKiB(srv.proc.pid);
  const peers = [];
  for (let i = 0; i < 20; i++) {
    const p = await raw(srv.port);
    await p.write('199#{"pattern":"echo","data":"');
    peers.push(p);
  }
  await stillServing();
  const after = rssKiB(srv.proc.pid);
  assert.ok(after - before < 8 * 1024, `RSS grew by ${after - before} KiB`);
  for (const p of peers) assert.ok(await p.waitFor((x) => x.closed(), STALL + scaled(2000)));
});

test('abrupt disconnect with requests in flight', async () => {
  const c = await raw(srv.port);
  await c.write(frame(JSON.stringify({ pattern: 'sleep', data: 200, id: 'gone' })));
  c.sock.destroy();
  await sleep(300);
  await stillServing();
});
