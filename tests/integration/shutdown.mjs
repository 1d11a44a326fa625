// Shutdown of `nestc conformance` (SIGTERM) with work in progress, over one transport:
//   SHUTDOWN_TRANSPORT  tcp (default), tls (NESTC_CERTS: server.pem, server.key), redis (REDIS_URL), nats (NATS_URL)
//   SHUTDOWN_WORKERS    N: serve with --workers N
// (a) a `sleep 3600000` request in flight: after --shutdown-timeout the request is cancelled and the process
//     exits (status 0, a log line), instead of staying up for the hour;
// (b) a 20 MB reply being written when SIGTERM comes arrives whole, then the connection ends (TCP, TLS);
// (c) a caller that disconnects during `sleep` cancels it: a later SIGTERM exits at once (TCP, TLS);
// (d) a reply produced during the grace period reaches the caller before the connections close.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { NESTC, sleep } from './harness.mjs';

const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR || 1);
const kind = process.env.SHUTDOWN_TRANSPORT || 'tcp';
const workers = process.env.SHUTDOWN_WORKERS;
const certs = process.env.NESTC_CERTS;
const direct = kind === 'tcp' || kind === 'tls';

// ---- the server --------------------------------------------------------------------------------------

async function startServer(args = []) {
  let url;
  const extra = [];
  if (kind === 'tcp') url = 'tcp://127.0.0.1:0';
  else if (kind === 'tls') {
    url = 'tls://127.0.0.1:0';
    extra.push('--cert', `${certs}/server.pem`, '--key', `${certs}/server.key`);
  } else if (kind === 'redis') url = process.env.REDIS_URL;
  else if (kind === 'nats') url = process.env.NATS_URL;
  if (!url) throw new Error(`no URL for ${kind}`);
  if (workers) extra.push('--workers', workers);
  const proc = spawn(NESTC, ['conformance', url, ...extra, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr.on('data', (d) => (err += d));
  const port = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (?:port (\d+)|\S+)/.exec(out);
      if (m) resolve(Number(m[1] || 0));
    });
    proc.on('exit', (code) => reject(new Error(`nestc exited ${code}: ${err}`)));
  });
  const exited = once(proc, 'exit');
  return {
    port,
    proc,
    stderr: () => err,
    // SIGTERM; resolves {code, signal, ms} once the process is gone, or {timedOut} after `ms`
    async terminate(ms) {
      const t0 = Date.now();
      proc.kill('SIGTERM');
      let timer;
      const limit = new Promise((resolve) => (timer = setTimeout(() => resolve(null), ms)));
      const r = await Promise.race([exited, limit]);
      clearTimeout(timer); // a pending timer would keep the test process up
      if (!r) {
        proc.kill('SIGKILL');
        await exited;
        return { timedOut: true, ms: Date.now() - t0 };
      }
      return { code: r[0], signal: r[1], ms: Date.now() - t0 };
    },
  };
}

// ---- clients: one request each, replies collected as raw bytes --------------------------------------

// A TCP/TLS connection carrying NestJS frames (`<utf16 length>#<json>`; our texts are ASCII).
async function directClient(port) {
  const sock =
    kind === 'tls'
      ? tls.connect({ port, host: '127.0.0.1', ca: readFileSync(`${certs}/ca.pem`), servername: 'localhost' })
      : net.connect(port, '127.0.0.1');
  await once(sock, kind === 'tls' ? 'secureConnect' : 'connect');
  const chunks = [];
  let rx = 0;
  let ended = false;
  sock.on('data', (d) => {
    chunks.push(d);
    rx += d.length;
  });
  sock.on('end', () => (ended = true));
  sock.on('close', () => (ended = true));
  sock.on('error', () => {});
  return {
    sock,
    rx: () => rx,
    ended: () => ended,
    send: (pattern, data, id) => {
      const json = JSON.stringify({ pattern, data, id });
      sock.write(`${json.length}#${json}`);
    },
    // the packets received so far, parsed
    packets() {
      const text = Buffer.concat(chunks).toString('latin1');
      const out = [];
      let i = 0;
      for (;;) {
        const h = text.indexOf('#', i);
        if (h < 0) break;
        const n = Number(text.slice(i, h));
        if (text.length < h + 1 + n) break;
        out.push(JSON.parse(text.slice(h + 1, h + 1 + n)));
        i = h + 1 + n;
      }
      return out;
    },
    close: () => sock.destroy(),
  };
}

// RESP: replies and pushes of a Redis connection, parsed once enough bytes are in.
function respReader(onValue) {
  let chunks = [];
  let len = 0;
  let need = 1;
  const parse = (b, i) => {
    const e = b.indexOf('\r\n', i);
    if (e < 0) return null;
    const t = String.fromCharCode(b[i]);
    const line = b.toString('latin1', i + 1, e);
    if (t === '+' || t === '-' || t === ':') return { v: line, next: e + 2 };
    if (t === '$') {
      const n = Number(line);
      if (n < 0) return { v: null, next: e + 2 };
      if (b.length < e + 2 + n + 2) return { need: e + 2 + n + 2 };
      return { v: b.subarray(e + 2, e + 2 + n), next: e + 2 + n + 2 };
    }
    if (t === '*') {
      const n = Number(line);
      const arr = [];
      let j = e + 2;
      for (let k = 0; k < n; k++) {
        const r = parse(b, j);
        if (!r || r.need) return r;
        arr.push(r.v);
        j = r.next;
      }
      return { v: arr, next: j };
    }
    throw new Error(`RESP type ${t}`);
  };
  return (d) => {
    chunks.push(d);
    len += d.length;
    if (len < need) return;
    let b = Buffer.concat(chunks);
    let i = 0;
    for (;;) {
      const r = i < b.length ? parse(b, i) : null;
      if (!r || r.need) {
        need = r && r.need ? r.need - i : b.length - i + 1;
        break;
      }
      onValue(r.v);
      i = r.next;
    }
    b = b.subarray(i);
    chunks = [b];
    len = b.length;
    need = Math.max(need, 1);
  };
}

function redisCmd(...args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return s;
}

// NestJS over Redis: requests published on <route>, replies on <route>.reply.
async function redisClient(routes) {
  const u = new URL(process.env.REDIS_URL);
  const sub = net.connect(Number(u.port), u.hostname);
  const pub = net.connect(Number(u.port), u.hostname);
  await Promise.all([once(sub, 'connect'), once(pub, 'connect')]);
  const packets = [];
  let confirmed = 0;
  sub.on('data', respReader((v) => {
    if (Array.isArray(v) && String(v[0]) === 'subscribe') confirmed++;
    else if (Array.isArray(v) && String(v[0]) === 'message') packets.push(JSON.parse(v[2].toString('utf8')));
  }));
  pub.on('data', respReader(() => {}));
  sub.write(redisCmd('SUBSCRIBE', ...routes.map((r) => `${r}.reply`)));
  while (confirmed < routes.length) await sleep(5);
  return {
    packets: () => packets,
    send: (pattern, data, id) => pub.write(redisCmd('PUBLISH', pattern, JSON.stringify({ pattern, data, id }))),
    close: () => {
      sub.destroy();
      pub.destroy();
    },
  };
}

// NestJS over NATS: requests published on <route> with a reply subject.
async function natsClient() {
  const u = new URL(process.env.NATS_URL);
  const sock = net.connect(Number(u.port), u.hostname);
  await once(sock, 'connect');
  const packets = [];
  let buf = Buffer.alloc(0);
  let pongs = 0;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const e = buf.indexOf('\r\n');
      if (e < 0) return;
      const line = buf.toString('latin1', 0, e);
      if (line.startsWith('MSG ')) {
        const n = Number(line.split(' ').pop());
        if (buf.length < e + 2 + n + 2) return;
        packets.push(JSON.parse(buf.toString('utf8', e + 2, e + 2 + n)));
        buf = buf.subarray(e + 2 + n + 2);
        continue;
      }
      if (line === 'PING') sock.write('PONG\r\n');
      if (line === 'PONG') pongs++;
      buf = buf.subarray(e + 2);
    }
  });
  sock.write('CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.shutdown.* 1\r\nPING\r\n');
  while (!pongs) await sleep(5);
  return {
    packets: () => packets,
    send: (pattern, data, id) => {
      const body = Buffer.from(JSON.stringify({ pattern, data, id }));
      sock.write(`PUB ${pattern} _INBOX.shutdown.${id} ${body.length}\r\n`);
      sock.write(body);
      sock.write('\r\n');
    },
    close: () => sock.destroy(),
  };
}

async function client(srv) {
  if (direct) return directClient(srv.port);
  if (kind === 'redis') return redisClient(['sleep', 'sum', 'echo']);
  return natsClient();
}

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// Sends `sleep 3600000`, then a `sum` on the same connection: messages of one connection are dispatched
// in order, so once the sum is answered the sleep is in flight on the server.
async function sleepInFlight(c) {
  c.send('sleep', 3600000, 'long');
  c.send('sum', [1, 2], 'probe');
  await waitFor(() => c.packets().some((p) => p.id === 'probe'), 10000 * factor, 'the probe reply');
}

test('(a) a pending timer does not keep the process up: cancelled at the deadline, exit 0', async () => {
  const srv = await startServer(['--shutdown-timeout', '1000']);
  const c = await client(srv);
  try {
    await sleepInFlight(c);
    const r = await srv.terminate((1000 + 5000) * factor);
    process.stderr.write(`(a) ${kind}: exit after SIGTERM in ${r.ms} ms\n`);
    assert.ok(!r.timedOut, `still running ${r.ms} ms after SIGTERM; stderr:\n${srv.stderr()}`);
    assert.equal(r.code, 0, srv.stderr());
    assert.ok(r.ms >= 900, `exited after ${r.ms} ms, before the 1000 ms grace period`);
    assert.ok(r.ms < 1000 + 2000 * factor, `exited after ${r.ms} ms`);
    assert.match(srv.stderr(), /closing with 1 request\(s\) still unfinished/);
    assert.ok(!c.packets().some((p) => p.id === 'long'), 'no reply for the cancelled request');
  } finally {
    c.close();
  }
});

test('(b) a 20 MB reply being written when SIGTERM comes arrives whole', { skip: !direct }, async () => {
  const srv = await startServer();
  const c = await client(srv);
  try {
    const big = 'x'.repeat(20 * 1024 * 1024);
    c.send('echo', big, 'big');
    // the reply has started: stop reading, so most of it still waits in the server when SIGTERM comes
    await waitFor(() => c.rx() > 0, 20000 * factor, 'the first bytes of the reply');
    c.sock.pause();
    // a request the server does not read while the reply waits (backpressure): unread data at the close
    // would turn it into a reset that discards the reply's tail
    c.send('sum', [1, 2], 'late');
    const exit = srv.terminate(20000 * factor);
    await sleep(200);
    c.sock.resume();
    const r = await exit;
    await waitFor(() => c.ended(), 5000 * factor, 'the end of the connection');
    const got = c.rx();
    const want = JSON.stringify({ response: big, isDisposed: true, id: 'big' }).length;
    process.stderr.write(`(b) ${kind}: received ${got} bytes of a ${want}-byte reply body\n`);
    const p = c.packets().filter((x) => x.id === 'big');
    assert.equal(p.length, 1, `received ${got} bytes, not one whole reply; stderr:\n${srv.stderr()}`);
    assert.equal(p[0].response.length, big.length);
    assert.ok(!r.timedOut, 'the server exited');
    assert.equal(r.code, 0, srv.stderr());
  } finally {
    c.close();
  }
});

test('(c) a caller that disconnects cancels its request: SIGTERM then exits at once', { skip: !direct }, async () => {
  const srv = await startServer(); // the default grace period, 10 s
  const c = await client(srv);
  await sleepInFlight(c);
  c.close();
  // the server sees the close and cancels `sleep`; a new connection served proves it went on
  const d = await client(srv);
  d.send('sum', [2, 3], 'after');
  await waitFor(() => d.packets().some((p) => p.id === 'after'), 10000 * factor, 'a reply after the close');
  d.close();
  await sleep(50);
  const r = await srv.terminate(15000 * factor);
  process.stderr.write(`(c) ${kind}: exit after SIGTERM in ${r.ms} ms\n`);
  assert.ok(!r.timedOut, `still running ${r.ms} ms after SIGTERM`);
  assert.equal(r.code, 0, srv.stderr());
  assert.ok(r.ms < 2000 * factor, `exited after ${r.ms} ms: the sleep was still pending`);
  assert.doesNotMatch(srv.stderr(), /still unfinished/);
});

test('(d) a reply produced during the grace period is delivered before the close', async () => {
  const srv = await startServer();
  const c = await client(srv);
  try {
    c.send('sleep', 300, 'short');
    c.send('sum', [1, 2], 'probe');
    await waitFor(() => c.packets().some((p) => p.id === 'probe'), 10000 * factor, 'the probe reply');
    const r = await srv.terminate(10000 * factor);
    assert.ok(!r.timedOut, 'the server exited');
    assert.equal(r.code, 0, srv.stderr());
    await waitFor(() => c.packets().some((p) => p.id === 'short'), 5000 * factor, 'the reply of `sleep 300`');
    assert.deepStrictEqual(c.packets().find((p) => p.id === 'short'), { response: 300, isDisposed: true, id: 'short' });
    assert.doesNotMatch(srv.stderr(), /still unfinished/);
  } finally {
    c.close();
  }
});
