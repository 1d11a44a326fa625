// How the nestc client reacts to hand-made server replies (tcp.md §6, vectors/tcp/client-behaviour.txt):
// a fake TCP server answers each request with scripted frames; the client is `nestc send`.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { NESTC, frame, scaled } from './harness.mjs';

// A fake server: for each request frame it calls script(req, sock).
async function fakeServer(script) {
  const seen = [];
  const srv = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf += d;
      for (;;) {
        const h = buf.indexOf('#');
        if (h < 0) return;
        const n = Number(buf.slice(0, h));
        if (buf.length < h + 1 + n) return;
        const req = JSON.parse(buf.slice(h + 1, h + 1 + n));
        buf = buf.slice(h + 1 + n);
        seen.push(req);
        script(req, sock);
      }
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: srv.address().port, seen, close: () => srv.close() };
}

function cli(args) {
  return new Promise((resolve) => {
    // NESTC_WRAP: run the CLI under a tool, e.g. valgrind (its error exit code fails the case)
    const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
    const p = spawn(wrap[0] ?? NESTC, [...wrap.slice(1), ...(wrap.length ? [NESTC] : []), ...args]);
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

const reply = (sock, obj) => sock.write(frame(JSON.stringify(obj)));

const cases = [
  ['unknown id ignored, then the good reply', (q, s) => { reply(s, { id: 'nope', response: 1, isDisposed: true }); reply(s, { id: q.id, response: 2, isDisposed: true }); }, 0, '2\n'],
  ['extra key: the whole object is the response', (q, s) => reply(s, { id: q.id, response: 5, isDisposed: true, extra: 1 }), 0, `{"id":"ID","response":5,"isDisposed":true,"extra":1}\n`],
  ['err with response: error', (q, s) => reply(s, { id: q.id, err: 'E', response: 1 }), 1, '', '"E"'],
  ['err null, isDisposed false, then disposed', (q, s) => { reply(s, { id: q.id, err: null, response: 1, isDisposed: false }); reply(s, { id: q.id, response: 2, isDisposed: true }); }, 0, '1\n2\n'],
  ['status field allowed', (q, s) => reply(s, { id: q.id, status: 'x', response: 3, isDisposed: true }), 0, '3\n'],
  ['falsy err ignored', (q, s) => { reply(s, { id: q.id, err: 0, response: 4 }); reply(s, { id: q.id, err: '', isDisposed: true }); }, 0, '4\n'],
  ['bare isDisposed after values', (q, s) => { reply(s, { id: q.id, response: 1 }); reply(s, { id: q.id, response: 2 }); setTimeout(() => reply(s, { id: q.id, isDisposed: true }), 30); }, 0, '1\n2\n'],
  ['value then connection closed: Connection closed', (q, s) => { reply(s, { id: q.id, response: 1 }); setTimeout(() => s.destroy(), 30); }, 2, '1\n', 'Connection closed'],
  ['garbage frame: the request fails with the reason', (q, s) => s.write('xx#garbage'), 2, '', 'NC_EPROTO'],
  ['never answers: timeout', () => {}, 2, '', 'Timeout'],
  // JSON that NestJS sends and JSON.parse accepts: read, the connection kept for what follows
  ['lone surrogate value, then more on the same connection', (q, s) => { reply(s, { id: q.id, response: 'ab\ud83d' }); reply(s, { id: q.id, response: ['\ude00', '\ud83d\ude00'], isDisposed: true }); }, 0, '"ab\\ud83d"\n["\\ude00","😀"]\n'],
  ['lone surrogate error value', (q, s) => reply(s, { id: q.id, err: { message: 'cut \ud83d' } }), 1, '', '"cut \\ud83d"'],
  ['ill-formed UTF-8 in a reply: U+FFFD as a NestJS client reads it, then more on the same connection', (q, s) => { const b = Buffer.concat([Buffer.from('{"response":"a'), Buffer.from([0xe0, 0x80, 0xff]), Buffer.from(`b","id":"${q.id}"}`)]); s.write(Buffer.concat([Buffer.from(`${b.toString().length}#`), b])); reply(s, { id: q.id, response: 2, isDisposed: true }); }, 0, '"a\ufffd\ufffd\ufffdb"\n2\n'],
  ['1e400 and a 21-digit integer in a reply', (q, s) => { s.write(frame(`{"response":[1e400,123456789012345678901],"id":"${q.id}"}`)); reply(s, { id: q.id, isDisposed: true }); }, 0, '[null,123456789012345680000]\n'],
  ['3,000 levels in a reply', (q, s) => reply(s, { id: q.id, response: JSON.parse('['.repeat(3000) + ']'.repeat(3000)), isDisposed: true }), 0, '['.repeat(3000) + ']'.repeat(3000) + '\n'],
  ['past 10,000 levels: that reply dropped with a log line, the next one read', (q, s) => { s.write(frame(`{"response":${'['.repeat(10001) + ']'.repeat(10001)},"id":"${q.id}"}`)); reply(s, { id: q.id, response: 2, isDisposed: true }); }, 0, '2\n'], // logged (with -v)
];

for (const [name, script, code, out, err] of cases) {
  test(name, async () => {
    const srv = await fakeServer(script);
    try {
      // the request timeout only matters to 'never answers'; the others answer at once (1 s × factor)
      const r = await cli(['send', `tcp://127.0.0.1:${srv.port}`, 'x', '1', '--timeout', String(scaled(1000))]);
      const id = srv.seen[0]?.id;
      assert.equal(r.code, code, r.err);
      assert.equal(r.out, out.replace('ID', id));
      if (err) assert.ok(r.err.includes(err), r.err);
      assert.deepEqual(srv.seen[0], { pattern: 'x', data: 1, id });
      assert.match(id, /^[0-9a-f]{21}$/, 'ids look like NestJS ids');
    } finally {
      srv.close();
    }
  });
}

test('emit sends the normalised route as the pattern, without id', async () => {
  const srv = await fakeServer(() => {});
  const r = await cli(['emit', `tcp://127.0.0.1:${srv.port}`, '{"evt":"obj","a":1}', '"x"']);
  assert.equal(r.code, 0, r.err);
  const end = Date.now() + scaled(3000); // until the server has parsed it (it was written before exit 0)
  while (Date.now() < end && !srv.seen.length) await new Promise((res) => setTimeout(res, 10));
  assert.deepEqual(srv.seen[0], { pattern: '{"a":1,"evt":"obj"}', data: 'x' });
  srv.close();
});

test('connection refused: exit 2 with a clear message', async () => {
  const srv = await fakeServer(() => {});
  const port = srv.port;
  srv.close();
  await new Promise((r) => setTimeout(r, 50));
  const r = await cli(['send', `tcp://127.0.0.1:${port}`, 'x', '1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /ECONNREFUSED/);
});
