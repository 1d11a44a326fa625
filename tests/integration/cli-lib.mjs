// Helpers of the CLI tests (cli-*.mjs): run one nestc command and collect its exit status and output;
// start a conformance server over tcp:// or tls:// (the test certificates in NESTC_CERTS).
import { spawn } from 'node:child_process';
import { NESTC, scaled, startNestc } from './harness.mjs';

export { NESTC, scaled, startNestc };
export const CERTS = process.env.NESTC_CERTS;
export const cert = (f) => `${CERTS}/${f}`;

// Runs `nestc ...args` with `input` on its standard input (ignored when undefined); resolves
// {code, out, err, ms}. Killed after limitMs (scaled): a hang shows as code null.
export function nestc(args, { input, limitMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(NESTC, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (err += s));
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // a command that refuses early does not read it
      child.stdin.end(input);
    }
    const guard = setTimeout(() => child.kill('SIGKILL'), scaled(limitMs));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      resolve({ code, out, err, ms: Date.now() - t0 });
    });
  });
}

// `nestc conformance tls://127.0.0.1:0` with the test certificates; the same shape as startNestc.
export async function startTls(args = []) {
  const { port, proc, stderr, stop } = await startTlsRaw(args);
  return { port, proc, stderr, stop };
}

async function startTlsRaw(args) {
  const proc = spawn(
    NESTC,
    ['conformance', 'tls://127.0.0.1:0', '--cert', cert('server.pem'), '--key', cert('server.key'), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  let out = '';
  proc.stderr.on('data', (d) => (err += d));
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
      return new Promise((r) => proc.on('exit', (c, s) => r(c ?? s)));
    },
  };
}
