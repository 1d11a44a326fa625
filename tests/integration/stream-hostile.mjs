// Hostile and unusual peers at the byte-stream level, over tcp:// and tls:// (`nestc conformance`):
// a peer that closes while a large reply is being written (SIGPIPE must never kill the process), a peer
// that half-closes after its request (its replies are still delivered), TLS 1.2 and 1.3 in both
// directions (OpenSSL and Node clients against nestc, nestc against a Node server), TLS handshakes
// that stall (closed after the handshake timeout, with the peer named in the log), log lines written to
// a dead stderr pipe, and failures that must say what happened (mTLS refusal, corrupt records, a reply
// that is not JSON). SIGPIPE keeps its default action throughout: raising it kills the process.
// NESTC_BIN names the nestc binary, NESTC_CERTS the directory of tests/interop/gen-certs.sh.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { NESTC, frame, sleep } from './harness.mjs';

const CERTS = process.env.NESTC_CERTS;
const FACTOR = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR) || 1;
const cert = (f) => `${CERTS}/${f}`;
const req = (pattern, data, id) => frame(JSON.stringify({ pattern, data, id }));

// `nestc conformance <scheme>://127.0.0.1:0 [args]` with the test certificates for tls.
async function start(scheme, args = []) {
  const extra = scheme === 'tls' ? ['--cert', cert('server.pem'), '--key', cert('server.key')] : [];
  const proc = spawn(NESTC, ['conformance', `${scheme}://127.0.0.1:0`, ...extra, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stderr.on('data', (d) => (err += d));
  const port = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code, sig) => reject(new Error(`nestc exited ${code ?? sig}: ${err}`)));
  });
  return {
    port,
    proc,
    stderr: () => err,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    // the exit status once the process ends by itself (after a SIGTERM the test sent: a second one
    // would end a slow shutdown at once)
    async exited() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
      const [code, sig] = await once(proc, 'exit');
      return code ?? sig;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
      proc.kill('SIGTERM');
      const [code, sig] = await once(proc, 'exit');
      return code ?? sig;
    },
  };
}

// A connected socket (plain or TLS, any TLS options) that collects what it receives.
async function connect(scheme, port, opts = {}) {
  const sock =
    scheme === 'tls'
      ? tls.connect({ port, host: '127.0.0.1', ca: readFileSync(cert('ca.pem')), servername: 'localhost', ...opts })
      : net.connect({ port, host: '127.0.0.1', ...opts });
  sock.on('error', () => {});
  const ready = once(sock, scheme === 'tls' ? 'secureConnect' : 'connect');
  const timer = new Promise((_, reject) => {
    const t = setTimeout(() => reject(new Error('connection not ready (handshake hangs?)')), 10000 * FACTOR);
    ready.finally(() => clearTimeout(t)).catch(() => {});
  });
  try {
    await Promise.race([ready, timer]);
  } catch (e) {
    sock.destroy();
    throw e;
  }
  let text = '';
  let ended = false;
  sock.on('data', (d) => (text += d));
  sock.on('end', () => (ended = true));
  sock.on('close', () => (ended = true));
  return { sock, text: () => text, ended: () => ended };
}

async function until(pred, ms) {
  const end = Date.now() + ms * FACTOR;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(10);
  }
  return pred();
}

async function served(scheme, port, id = 'alive') {
  let c;
  try {
    c = await connect(scheme, port);
  } catch {
    return false;
  }
  c.sock.write(req('sum', [20, 22], id));
  const ok = await until(() => c.text().includes(`"id":"${id}"`), 10000);
  c.sock.destroy();
  return ok && c.text().includes('"response":42');
}

const schemes = CERTS ? ['tcp', 'tls'] : ['tcp'];

for (const scheme of schemes) {
  test(`${scheme}: a peer closing during a large reply does not kill the server (SIGPIPE)`, async () => {
    const srv = await start(scheme);
    try {
      const big = 'x'.repeat(1 << 20);
      const items = Array.from({ length: 20000 }, (_, i) => i);
      for (let round = 0; round < 4; round++) {
        for (const [pattern, data] of [
          ['echo', big],
          ['streaming', items],
        ]) {
          const c = await connect(scheme, srv.port);
          // the whole request is handed to the kernel, then the socket goes away at once (RST, since the
          // reply is unread): the server's writes hit a dead socket
          await new Promise((r) => c.sock.write(req(pattern, data, `${pattern}${round}`), r));
          c.sock.destroy();
        }
        // the server had time to work on them: wait until it answers another client
        assert.ok(await served(scheme, srv.port, `alive${round}`), `served after round ${round}`);
        assert.ok(srv.alive(), `server alive after round ${round}: ${srv.stderr()}`);
      }
    } finally {
      assert.equal(await srv.stop(), 0, `graceful exit: ${srv.stderr()}`);
    }
  });

  test(`${scheme}: a peer that half-closes after its request still gets the reply, then FIN`, async () => {
    const srv = await start(scheme);
    try {
      // request and FIN in one burst: the server reads both before its reply leaves
      for (let i = 0; i < 20; i++) {
        const c = await connect(scheme, srv.port, { allowHalfOpen: true });
        c.sock.end(req('sum', [i, 1], `half${i}`));
        assert.ok(await until(() => c.ended(), 10000), 'the server ends the connection');
        assert.ok(c.text().includes(`"response":${i + 1}`), `reply ${i} arrived before FIN: ${c.text()}`);
      }
      // a reply larger than the socket buffers, read late: most of it is still queued at our FIN
      const c = await connect(scheme, srv.port, { allowHalfOpen: true });
      const big = 'y'.repeat(16 << 20);
      c.sock.pause();
      c.sock.end(req('echo', big, 'big'));
      await sleep(200); // not a readiness wait: lets the reply pile up unread while our FIN arrives
      c.sock.resume();
      assert.ok(await until(() => c.ended(), 20000), 'the server ends the connection');
      const m = /^(\d+)#/.exec(c.text());
      assert.ok(m && c.text().length === m[0].length + Number(m[1]), `the whole reply arrived (${c.text().length} chars)`);
      assert.ok(srv.alive());
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  });

  test(`${scheme}: a peer that keeps writing after the server's FIN at shutdown still gets the whole reply`, async () => {
    const srv = await start(scheme);
    let c;
    let writer;
    try {
      c = await connect(scheme, srv.port);
      const big = 'z'.repeat(1 << 20);
      // the reply has started (the server is working on it): stop reading, so the rest waits unread in
      // our socket buffer while the server ends the connection
      const started = new Promise((r) => c.sock.once('data', () => { c.sock.pause(); r(); }));
      c.sock.write(req('echo', big, 'linger'));
      await started;
      srv.proc.kill('SIGTERM');
      // bytes arriving after the server's FIN: a server that closed at once answers them with a reset,
      // which destroys the part of the reply we have not read yet
      writer = setInterval(() => c.sock.write('x'.repeat(1024)), 10);
      // not a readiness wait: keeps writing while the server has ended, for less than the server's 2 s
      // linger (a peer still writing past it is reset by design), whatever the time factor
      await sleep(Math.min(300 * FACTOR, 1000));
      clearInterval(writer);
      writer = null;
      c.sock.end();
      c.sock.resume();
      assert.ok(await until(() => c.ended(), 10000), 'the connection ends');
      const m = /^(\d+)#/.exec(c.text());
      assert.ok(m && c.text().length >= m[0].length + Number(m[1]),
        `the whole reply arrived (${c.text().length} of ${m ? m[0].length + Number(m[1]) : '?'} chars)`);
      assert.equal(await srv.exited(), 0, `graceful exit: ${srv.stderr()}`);
    } finally {
      if (writer) clearInterval(writer);
      c?.sock.destroy();
      await srv.stop();
    }
  });
}

// The library's own log lines: stderr is a pipe whose reader is gone (`nestc conformance ... 2>&1 | head`).
test('log lines to a closed stderr pipe do not kill the server (SIGPIPE)', async () => {
  const srv = await start('tcp');
  try {
    srv.proc.stderr.destroy(); // the reading end is closed: every write to stderr now fails with EPIPE
    for (let i = 0; i < 3; i++) {
      const c = await connect('tcp', srv.port);
      c.sock.write('xx#garbage'); // logged at ERROR, connection ended
      assert.ok(await until(() => c.ended(), 10000));
    }
    assert.ok(await served('tcp', srv.port), 'served after logging to a dead pipe');
    assert.ok(srv.alive(), `exit ${srv.proc.exitCode ?? srv.proc.signalCode}`);
  } finally {
    await srv.stop(); // the CLI's own last words on stderr are its business
  }
});

// ---- TLS versions --------------------------------------------------------------------------------------

const tlsTest = (name, fn) => test(name, { skip: !CERTS && 'NESTC_CERTS not set' }, fn);

for (const version of ['TLSv1.2', 'TLSv1.3']) {
  tlsTest(`Node ${version} client against the nestc server`, async () => {
    const srv = await start('tls');
    try {
      const c = await connect('tls', srv.port, { minVersion: version, maxVersion: version });
      assert.equal(c.sock.getProtocol(), version);
      c.sock.write(req('sum', [1, 2], 'v'));
      assert.ok(await until(() => c.text().includes('"response":3'), 10000), `reply over ${version}`);
      c.sock.destroy();
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  });

  const flag = version === 'TLSv1.2' ? '-tls1_2' : '-tls1_3';
  tlsTest(`openssl s_client ${flag} against the nestc server`, async () => {
    const srv = await start('tls');
    try {
      const cl = spawn(
        'openssl',
        ['s_client', flag, '-quiet', '-connect', `127.0.0.1:${srv.port}`, '-CAfile', cert('ca.pem')],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let out = '';
      cl.stdout.on('data', (d) => (out += d));
      cl.stdin.write(req('sum', [2, 3], 'ossl'));
      const ok = await until(() => out.includes('"response":5'), 10000);
      cl.kill();
      assert.ok(ok, `reply over ${version}: ${out}`);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  });

  tlsTest(`nestc send against a Node ${version} TLS server`, async () => {
    // a minimal NestJS-framed responder: `<len>#{"pattern","data","id"}` → the sum as one reply
    const server = tls.createServer(
      { key: readFileSync(cert('server.key')), cert: readFileSync(cert('server.pem')), minVersion: version, maxVersion: version },
      (s) => {
        let buf = '';
        s.on('error', () => {});
        s.on('data', (d) => {
          buf += d;
          const m = /^(\d+)#/.exec(buf);
          if (!m || buf.length < m[0].length + Number(m[1])) return;
          const msg = JSON.parse(buf.slice(m[0].length, m[0].length + Number(m[1])));
          buf = '';
          const reply = { id: msg.id, response: msg.data.reduce((a, b) => a + b, 0), isDisposed: true };
          s.write(frame(JSON.stringify(reply)));
        });
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address();
      const cl = spawn(NESTC, ['send', `tls://localhost:${port}`, 'sum', '[4,5]', '--ca', cert('ca.pem'), '--timeout', String(10000 * FACTOR)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      cl.stdout.on('data', (d) => (out += d));
      cl.stderr.on('data', (d) => (err += d));
      const [code] = await once(cl, 'exit');
      assert.equal(code, 0, err);
      assert.equal(out.trim(), '9');
    } finally {
      server.close();
    }
  });
}

// ---- a record cut short ---------------------------------------------------------------------------------

// After a complete request (nothing of a frame is pending) the peer sends the header of a 16 KiB record and
// a few bytes of it, then stalls: the server holds the partial record, so it counts as an incomplete
// message and is closed after --incomplete-timeout, the peer named in the log.
tlsTest('a peer stalled in the middle of a TLS record is closed after --incomplete-timeout', async () => {
  const srv = await start('tls', ['--incomplete-timeout', '300']);
  const raw = net.connect(srv.port, '127.0.0.1');
  try {
    raw.on('error', () => {});
    await once(raw, 'connect');
    const peer = `127.0.0.1:${raw.localPort}`;
    // TLS runs over our own pipe, so raw bytes can be written to the socket between its records
    const pipe = new Duplex({ read() {}, write: (chunk, enc, cb) => raw.write(chunk, cb) });
    let closed = false;
    raw.on('data', (d) => pipe.push(d));
    raw.on('end', () => { closed = true; pipe.push(null); });
    raw.on('close', () => (closed = true));
    const t = tls.connect({ socket: pipe, ca: readFileSync(cert('ca.pem')), servername: 'localhost' });
    t.on('error', () => {});
    await once(t, 'secureConnect');
    let text = '';
    t.on('data', (d) => (text += d));
    t.write(req('sum', [1, 2], 'whole'));
    assert.ok(await until(() => text.includes('"response":3'), 10000), 'a whole request is answered');
    raw.write(Buffer.concat([Buffer.from('1703034000', 'hex'), Buffer.alloc(100, 7)]));
    assert.ok(await until(() => closed, 5000), 'the stalled connection is closed');
    assert.ok(await until(() => srv.stderr().includes(`${peer} stopped sending in the middle of a TLS record`), 5000),
      `the log names the peer: ${srv.stderr()}`);
    assert.ok(await served('tls', srv.port), 'still serving');
  } finally {
    raw.destroy();
    assert.equal(await srv.stop(), 0);
  }
});

// ---- handshake timeout ---------------------------------------------------------------------------------

// The first bytes of a real ClientHello (a TLS record header and the start of the handshake message).
const halfClientHello = () => Buffer.from('16030100f8010000f40303', 'hex');

tlsTest('stalled TLS handshakes are closed after --handshake-timeout, the peer named in the log', async () => {
  const srv = await start('tls', ['--handshake-timeout', '300']);
  try {
    const n = 50;
    const socks = [];
    for (let i = 0; i < n; i++) {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('error', () => {});
      await once(s, 'connect');
      const st = { s, closed: false, port: s.localPort };
      s.on('close', () => (st.closed = true));
      s.on('end', () => (st.closed = true));
      if (i % 2 === 0) s.write(halfClientHello()); // half a ClientHello; the others send nothing
      s.resume();
      socks.push(st);
    }
    assert.ok(await until(() => socks.every((x) => x.closed), 10000), 'every stalled connection closed');
    const log = srv.stderr();
    assert.match(log, /WARN/);
    for (const x of socks.slice(0, 3)) assert.ok(log.includes(`127.0.0.1:${x.port}`), `log names 127.0.0.1:${x.port}`);
    assert.ok(await served('tls', srv.port), 'a normal client is served');
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

tlsTest('a completed handshake is not cut by the handshake timeout', async () => {
  const srv = await start('tls', ['--handshake-timeout', '200']);
  try {
    const c = await connect('tls', srv.port);
    await sleep(600);
    c.sock.write(req('sum', [1, 1], 'late'));
    assert.ok(await until(() => c.text().includes('"response":2'), 10000));
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

// ---- errors that say what happened ---------------------------------------------------------------------

// `nestc send URL sum [1,2] ARGS`: resolves {code, out, err}.
async function nestcSend(url, args = []) {
  const cl = spawn(NESTC, ['send', url, 'sum', '[1,2]', '--timeout', String(10000 * FACTOR), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  cl.stdout.on('data', (d) => (out += d));
  cl.stderr.on('data', (d) => (err += d));
  const [code] = await once(cl, 'exit');
  return { code, out, err };
}

tlsTest('mTLS refusal: the client fails with NC_ETLS and the alert, the server names the peer', async () => {
  const srv = await start('tls', ['--ca', cert('ca.pem')]);
  try {
    // no client certificate: TLS 1.3 refuses it after the client's handshake is done, with an alert
    const r = await nestcSend(`tls://localhost:${srv.port}`, ['--ca', cert('ca.pem')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /NC_ETLS.*certificate required/, r.err);
    // a certificate from another CA
    const u = await nestcSend(`tls://localhost:${srv.port}`, [
      '--ca', cert('ca.pem'), '--cert', cert('untrusted-server.pem'), '--key', cert('untrusted-server.key'),
    ]);
    assert.equal(u.code, 2);
    assert.match(u.err, /NC_ETLS.*unknown ca/, u.err);
    assert.ok(await until(() => (srv.stderr().match(/WARN.*connection from 127\.0\.0\.1:\d+ failed/g) || []).length >= 2, 5000), srv.stderr());
    assert.doesNotMatch(srv.stderr(), /from \?/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

tlsTest('a corrupt TLS record after the handshake is logged at WARN with the peer', async () => {
  const srv = await start('tls');
  try {
    const rawSock = net.connect(srv.port, '127.0.0.1');
    await once(rawSock, 'connect');
    const c = tls.connect({ socket: rawSock, ca: readFileSync(cert('ca.pem')), servername: 'localhost' });
    c.on('error', () => {});
    await once(c, 'secureConnect');
    let text = '';
    c.on('data', (d) => (text += d));
    c.write(req('sum', [1, 2], 'first')); // the handshake is done on the server too once this is answered
    assert.ok(await until(() => text.includes('"response":3'), 10000));
    rawSock.write(Buffer.from('1703030020' + '00'.repeat(32), 'hex')); // application data that fails to decrypt
    const re = new RegExp(`WARN.*connection 127\\.0\\.0\\.1:${rawSock.localPort} closed: TLS`);
    assert.ok(await until(() => re.test(srv.stderr()), 5000), srv.stderr());
    c.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a reply that is not JSON fails the call with NC_EPROTO and the reason', async () => {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.write('9#{"id":1,]'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const r = await nestcSend(`tcp://127.0.0.1:${server.address().port}`);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /NC_EPROTO: invalid JSON/, r.err);
  } finally {
    server.close();
  }
});

// A reply that announces more than the client's max_buffer_size (default 128 Mi units): the call fails
// with NC_ETOOBIG and the reason, not "Connection closed", over tcp and tls.
for (const scheme of schemes) {
  test(`${scheme}: a reply over the size limit fails the call with NC_ETOOBIG and the reason`, async () => {
    const onConn = (s) => {
      s.on('error', () => {});
      s.once('data', () => s.write('200000000#{"id":'));
    };
    const server =
      scheme === 'tls'
        ? tls.createServer({ key: readFileSync(cert('server.key')), cert: readFileSync(cert('server.pem')) }, onConn)
        : net.createServer(onConn);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `${scheme}://${scheme === 'tls' ? 'localhost' : '127.0.0.1'}:${server.address().port}`;
      const r = await nestcSend(url, scheme === 'tls' ? ['--ca', cert('ca.pem')] : []);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /NC_ETOOBIG.*exceeds the maximum allowed length/, r.err);
    } finally {
      server.close();
    }
  });
}
