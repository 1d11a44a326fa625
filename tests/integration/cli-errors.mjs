// How the CLI reports failures: the library's specific reason without -v, "no handler" as an error
// reply (exit 1, the error value as JSON on stderr) as NC_EREMOTE is, connecting bounded when the request
// timeout is off and by --connect-timeout, a bench whose every reply is an error exits non-zero, and
// --insecure over TLS (tls tests need NESTC_CERTS).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { nestc, startNestc, startTls, CERTS, scaled } from './cli-lib.mjs';
import { FACTOR } from './harness.mjs';

let srv;
let url;
let mute; // accepts connections and never says anything: a TLS handshake that never completes
let mutePort;

before(async () => {
  srv = await startNestc();
  url = `tcp://127.0.0.1:${srv.port}`;
  mute = net.createServer(() => {});
  mute.listen(0, '127.0.0.1');
  await once(mute, 'listening');
  mutePort = mute.address().port;
});
after(async () => {
  assert.equal(await srv.stop(), 0);
  mute.close();
});

test('the library reason is printed without -v, once, on the nestc line', async () => {
  let r = await nestc(['send', '127.0.0.1:3300', 'sum']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^nestc: cannot use 127\.0\.0\.1:3300: .*expected scheme:\/\/host:port/m);
  assert.equal(r.err.match(/expected scheme/g).length, 1, r.err);
  r = await nestc(['send', `tls://127.0.0.1:${mutePort}`, 'sum', '--ca', '/nonexistent/ca.pem']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^nestc: cannot use tls:.*\/nonexistent\/ca\.pem/m);
  r = await nestc(['bench', '127.0.0.1:3300', 'sum', '--engine', 'client', '--duration', '0.1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^nestc bench: cannot use 127\.0\.0\.1:3300: .*expected scheme:\/\/host:port/m);
  r = await nestc(['conformance', 'tcp:/127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^nestc: cannot serve tcp:\/127\.0\.0\.1:0: .*(expected|invalid URL)/m);
});

test('no handler is an error reply: exit 1, the error value as JSON on stderr', async () => {
  const r = await nestc(['send', url, 'no.such.pattern', '1']);
  assert.equal(r.code, 1, r.err);
  assert.equal(r.out, '');
  const v = JSON.parse(r.err.trim());
  assert.match(JSON.stringify(v), /There is no matching message handler defined in the remote service/);
  const e = await nestc(['send', url, 'exception', '{"a":1}']);
  assert.equal(e.code, 1);
  assert.deepEqual(JSON.parse(e.err), { a: 1 });
});

test('--timeout 0 keeps connecting bounded; --connect-timeout bounds it', async () => {
  // the TLS handshake to a peer that never answers is part of connecting
  let r = await nestc(['send', `tls://127.0.0.1:${mutePort}`, 'sum', '--timeout', '0', '--connect-timeout', '300']);
  assert.equal(r.code, 2);
  assert.match(r.err, /timed out/);
  assert.ok(r.ms < scaled(3000), `took ${r.ms} ms`);
  r = await nestc(['send', `tls://127.0.0.1:${mutePort}`, 'sum', '--timeout', '0'], { limitMs: 20000 });
  assert.equal(r.code, 2, `exit ${r.code} after ${r.ms} ms: ${r.err}`);
  assert.match(r.err, /timed out/);
  r = await nestc(['send', `tls://127.0.0.1:${mutePort}`, 'sum', '--timeout', '200']);
  assert.equal(r.code, 2);
  assert.ok(r.ms < scaled(3000), `took ${r.ms} ms`);
});

test('a bench whose every reply is an error says so and exits non-zero', async () => {
  const secs = String(0.2 * FACTOR);
  const r = await nestc(['bench', url, 'exception', '{"a":1}', '--duration', secs, '--warmup', '0'], {
    limitMs: 30000,
  });
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /every reply was an error reply/);
  assert.ok(JSON.parse(r.out).errors > 0);
  const ok = await nestc(['bench', url, 'sum', '[1]', '--duration', secs, '--warmup', '0'], { limitMs: 30000 });
  assert.equal(ok.code, 0, ok.err);
});

test('--insecure: a tls:// server not signed by a trusted CA, warned about once', { skip: !CERTS && 'NESTC_CERTS not set' }, async () => {
  const tls = await startTls();
  try {
    const target = `tls://127.0.0.1:${tls.port}`;
    let r = await nestc(['send', target, 'sum', '[1,2]']);
    assert.equal(r.code, 2, 'without --ca or --insecure the test CA is not trusted');
    r = await nestc(['send', target, 'sum', '[1,2]', '--insecure']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, '3\n');
    assert.equal(r.err.match(/warning: --insecure/g)?.length, 1, r.err);
  } finally {
    await tls.stop();
  }
});

test('emit --timeout: an event the peer never reads fails at the timeout (exit 2)', async () => {
  // a peer that accepts and never reads: the socket buffers fill and the rest of the event stays unsent
  const deaf = net.createServer((s) => s.pause());
  deaf.listen(0, '127.0.0.1');
  await once(deaf, 'listening');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestc-emit-'));
  const file = path.join(dir, 'big.json');
  fs.writeFileSync(file, JSON.stringify('e'.repeat(16 << 20))); // more than both ends' socket buffers hold
  try {
    const r = await nestc(['emit', `tcp://127.0.0.1:${deaf.address().port}`, 'big', `@${file}`, '--timeout', '300'], {
      limitMs: 20000,
    });
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /not accepted by the transport within 300 ms/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    deaf.close();
  }
});

// the server's stderr once it holds `re` (polled: the line comes on its own stream, in no set order with stdout)
async function stderrMatch(s, re) {
  const end = Date.now() + scaled(5000);
  while (!re.test(s.stderr()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return s.stderr();
}

test('nestc conformance logs a start-up line: what is served where (text and JSON lines)', async () => {
  const line = new RegExp(
    `\\[nestc\\] INFO \\[Server\\] listening on tcp://127\\.0\\.0\\.1:${srv.port} \\(transport tcp, \\d+ routes, 1 worker\\)`,
  );
  assert.match(await stderrMatch(srv, line), line);
  process.env.NESTC_LOG_FORMAT = 'json';
  let j;
  try {
    j = await startNestc(['--workers', '2']);
  } finally {
    delete process.env.NESTC_LOG_FORMAT;
  }
  try {
    const text = await stderrMatch(j, /listening on/);
    const rec = text
      .split('\n')
      .filter((l) => l.startsWith('{')) // the CLI's own words ("nestc conformance: ...") are not the library's
      .map((l) => JSON.parse(l))
      .find((r) => /listening on/.test(r.message));
    assert.ok(rec, text);
    assert.equal(rec.level, 'INFO');
    assert.equal(rec.component, 'Server');
    assert.equal(rec.worker, 0);
    assert.match(rec.message, new RegExp(`^listening on tcp://127\\.0\\.0\\.1:${j.port} \\(transport tcp, \\d+ routes, 2 workers\\)$`));
    assert.match(rec.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  } finally {
    await j.stop();
  }
});
