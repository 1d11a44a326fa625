// Soak: mixed load against `nestc conformance` for a while (default 10 minutes), with random disconnects
// and a server restart halfway, then a verdict: RSS and open descriptors flat, no lost or misrouted reply.
//
//   NESTC_BIN=build/bin/nestc node tests/soak/soak.mjs [--minutes 10] [--connections 32]
//
// Each connection keeps a few requests in flight, chosen at random: sum (checked), a stream (every value
// checked, in order), an echo of up to 256 KiB (checked byte for byte), and events. A request is "lost" if
// its connection stays open and no final reply comes within 10 s; "misrouted" if a reply carries an id
// we did not send on that connection or a wrong value. Requests on a connection we destroy, or that the
// restart closes, are "aborted" (counted, not errors).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MINUTES = arg('minutes', 10);
const CONNS = arg('connections', 32);
const NESTC = process.env.NESTC_BIN;
if (!NESTC) throw new Error('NESTC_BIN is not set');

let port = 0;
let proc = null;
async function startServer() {
  proc = spawn(NESTC, ['conformance', `tcp://127.0.0.1:${port}`, '-q'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  port = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
}
async function stopServer() {
  proc.kill('SIGTERM');
  const [code] = await once(proc, 'exit');
  if (code !== 0) throw new Error(`server exited with ${code}`);
}
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]);
const fds = () => readdirSync(`/proc/${proc.pid}/fd`).length;

const n = { sent: 0, ok: 0, events: 0, aborted: 0, lost: 0, misrouted: 0, disconnects: 0 };
let nextId = 1;
const frame = (o) => {
  const s = JSON.stringify(o);
  return `${s.length}#${s}`;
};

function connection() {
  const sock = net.connect(port, '127.0.0.1');
  const pending = new Map(); // id -> {check(value), stream: [...expected], at}
  let buf = '';
  let alive = true;
  const abort = () => {
    if (!alive) return;
    alive = false;
    n.aborted += pending.size;
    pending.clear();
  };
  sock.setEncoding('utf8');
  sock.on('error', abort);
  sock.on('close', abort);
  sock.on('data', (d) => {
    buf += d;
    for (;;) {
      const h = buf.indexOf('#');
      if (h < 0) return;
      const len = Number(buf.slice(0, h));
      if (buf.length - h - 1 < len) return;
      const pkt = JSON.parse(buf.slice(h + 1, h + 1 + len));
      buf = buf.slice(h + 1 + len);
      const p = pending.get(pkt.id);
      if (!p) {
        n.misrouted++;
        continue;
      }
      if (pkt.err) {
        n.misrouted++;
        pending.delete(pkt.id);
        continue;
      }
      if ('response' in pkt && !p.check(pkt.response)) n.misrouted++;
      if (pkt.isDisposed) {
        if (p.left && p.left() !== 0) n.misrouted++;
        pending.delete(pkt.id);
        n.ok++;
      }
    }
  });
  const send = () => {
    if (!alive) return;
    const id = `s${nextId++}`;
    const r = Math.random();
    if (r < 0.5) {
      const a = Math.floor(Math.random() * 1000), b = Math.floor(Math.random() * 1000);
      pending.set(id, { check: (v) => v === a + b, at: Date.now() });
      sock.write(frame({ pattern: { cmd: 'sum' }, data: [a, b], id }));
    } else if (r < 0.7) {
      const k = 1 + Math.floor(Math.random() * 20);
      let i = 0;
      pending.set(id, { check: (v) => v === ++i, left: () => k - i, at: Date.now() });
      sock.write(frame({ pattern: 'streaming', data: Array.from({ length: k }, (_, j) => j + 1), id }));
    } else if (r < 0.85) {
      const s = 'é'.repeat(Math.floor(Math.random() * 131072));
      pending.set(id, { check: (v) => v === s, at: Date.now() });
      sock.write(frame({ pattern: { cmd: 'echo' }, data: s, id }));
    } else {
      sock.write(frame({ pattern: 'soak_event', data: { i: nextId } })); // no handler: logged (stderr ignored)
      n.events++;
      return;
    }
    n.sent++;
  };
  return {
    get alive() {
      return alive;
    },
    tick() {
      const now = Date.now();
      for (const [id, p] of pending)
        if (now - p.at > 10000) {
          n.lost++;
          pending.delete(id);
        }
      while (alive && pending.size < 4) send();
    },
    destroy() {
      n.disconnects++;
      abort();
      sock.destroy();
    },
  };
}

await startServer();
let conns = Array.from({ length: CONNS }, connection);
const samples = [];
const t0 = Date.now(), end = t0 + MINUTES * 60000;
let restarted = false;
while (Date.now() < end) {
  await new Promise((r) => setTimeout(r, 5));
  for (const c of conns) c.tick();
  if (Math.random() < 0.01) conns[Math.floor(Math.random() * conns.length)].destroy();
  conns = conns.map((c) => (c.alive ? c : connection()));
  if (!restarted && Date.now() - t0 > (end - t0) / 2) {
    restarted = true;
    await stopServer();
    await startServer();
    conns = conns.map((c) => (c.destroy(), connection()));
  }
  if (samples.length === 0 || Date.now() - samples.at(-1).t > 10000)
    samples.push({ t: Date.now(), rss: rss(), fds: fds(), restarted });
}
for (const c of conns) c.destroy();
await new Promise((r) => setTimeout(r, 500));
const after = samples.filter((s) => s.restarted);
const first = after[1] ?? after[0], last = after.at(-1);
await stopServer();
console.log(JSON.stringify({ minutes: MINUTES, ...n, rss_kib: [first.rss, last.rss], fds: [first.fds, last.fds] }));
const flat = last.rss <= first.rss * 1.25 + 2048 && last.fds <= first.fds + CONNS;
if (n.lost || n.misrouted || !flat) {
  console.error('soak: FAILED', { lost: n.lost, misrouted: n.misrouted, flat });
  process.exit(1);
}
console.log('soak: ok');
