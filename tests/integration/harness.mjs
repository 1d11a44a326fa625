// Small helpers for the raw-socket tests: start `nestc conformance`, open raw connections, collect what
// comes back (data, FIN, close) with timings. NESTC_BIN names the nestc binary.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';

export const NESTC = process.env.NESTC_BIN;
// Under a wrapping tool (valgrind) timings and memory figures are the tool's, not the server's.
export const WRAPPED = Boolean(process.env.NESTC_WRAP);
// Every time limit of a test is multiplied by this (CMake sets it for each test: 1 normally, more for the
// sanitizer and valgrind passes), so a slow or loaded machine makes tests slower, not red.
export const FACTOR = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR) || 1;
export const scaled = (ms) => ms * FACTOR;

// Starts `nestc conformance <url> <args>` (default tcp://127.0.0.1:0); resolves {port, proc, stderr(), stop()}.
export async function startNestc(args = [], url = 'tcp://127.0.0.1:0') {
  if (!NESTC) throw new Error('NESTC_BIN is not set');
  // NESTC_WRAP: run the server under a tool, e.g. "valgrind --error-exitcode=99 --leak-check=full"
  const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
  const cmd = [...wrap, NESTC, 'conformance', url, ...args];
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  let out = '';
  const port = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`nestc exited ${code}: ${err}`)));
  });
  return {
    port,
    proc,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const [code, signal] = await once(proc, 'exit');
      if (signal) process.stderr.write(`nestc died with ${signal}:\n${err}\n`);
      return code ?? signal;
    },
  };
}

// A raw connection recording events: {t, kind: 'data'|'fin'|'close', text}.
export async function raw(port) {
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  const t0 = Date.now();
  const events = [];
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    events.push({ t: Date.now() - t0, kind: 'data', text: d.toString('utf8') });
  });
  sock.on('end', () => events.push({ t: Date.now() - t0, kind: 'fin' }));
  sock.on('close', () => events.push({ t: Date.now() - t0, kind: 'close' }));
  sock.on('error', () => {});
  return {
    sock,
    events,
    received: () => buf.toString('utf8'),
    write: (s) => new Promise((r) => sock.write(s, r)),
    closed: () => events.some((e) => e.kind === 'close' || e.kind === 'fin'),
    // waits until pred(this) holds or ms (scaled by FACTOR) pass; returns whether it holds
    async waitFor(pred, ms = scaled(3000)) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (pred(this)) return true;
        await new Promise((r) => setTimeout(r, 5));
      }
      return pred(this);
    },
  };
}

// Frames a JSON text with its UTF-16 length, as NestJS does.
export const frame = (json) => `${json.length}#${json}`;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resident set size of a process in KiB (Linux).
import { readFileSync } from 'node:fs';
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
