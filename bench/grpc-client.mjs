// Load from @grpc/grpc-js, the gRPC library NestJS's Transport.GRPC client (ClientGrpcProxy) and server run on,
// against a server of the conformance service (conformance.proto: nestc.conformance.Conformance), for the grpc
// scenario of run.sh: the "NestJS client" column.
//
//   node grpc-client.mjs --url HOST:PORT [--mode unary|stream] [--connections C] [--inflight N] [--items K]
//                        [--duration S] [--warmup S] [--server-pid PID] [--proto FILE]
//
// unary: `Sum` of [1,2,3]; stream: `Streaming` of K items (default 100, values "v0" … ), delay_ms 0, each call
// read to its end. Each connection is one grpc-js client with a channel of its own (one HTTP/2 connection),
// keeping N calls in flight on it: every finished call starts the next. Only calls (and, streaming, messages)
// completed inside the counting window, after the warm-up, are counted; a call's latency runs from the call to
// its status (streaming: the whole stream). With --server-pid the server's CPU time (user + system, all
// threads) is read from /proc/PID/stat at the window's edges, as `nestc bench --server-pid` does, and its
// VmRSS at the window's end. Prints one JSON line:
//   {"requests","messages","errors","rps","mps","p50_us","p99_us","connections","inflight","items","mode",
//    "duration_s","engine":"grpc-js","client_cpu_us_per_resp","client_cpu_s"
//    [,"server_cpu_s","server_cpu_us_per_resp","server_cpu_us_per_msg","server_rss_kib"],"transport":"grpc"}
// (requests = calls; messages = response messages: = calls for unary, calls × K for streaming; rps = calls / s,
// mps = messages / s.)
// The pinned @grpc/grpc-js and @grpc/proto-loader are tests/interop's (the NestJS gRPC peers live there).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', 'tests', 'interop', 'package.json'));
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    mode: { type: 'string', default: 'unary' },
    connections: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '1' },
    items: { type: 'string', default: '100' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'server-pid': { type: 'string' },
    proto: { type: 'string', default: join(here, '..', 'tests', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if (!args.url || !['unary', 'stream'].includes(args.mode)) {
  console.error('usage: node grpc-client.mjs --url HOST:PORT [--mode unary|stream] [--connections C] ' +
    '[--inflight N] [--items K] [--duration S] [--warmup S] [--server-pid PID] [--proto FILE]');
  process.exit(2);
}
const url = args.url.replace(/^grpc:\/\//, '');
const connections = Number(args.connections);
const inflight = Number(args.inflight);
const items = Number(args.items);
const duration = Number(args.duration);
const warmup = Number(args.warmup);
const stream = args.mode === 'stream';
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();
// CPU seconds (utime + stime, fields 14 and 15) of a process, from /proc/PID/stat; null if it is gone.
const cpuOf = (pid) => {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
};
const rssOf = (pid) => {
  try {
    const m = /^VmRSS:\s*(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
};
const serverPid = args['server-pid'];
if (serverPid && cpuOf(serverPid) == null) {
  console.error(`grpc-client.mjs: cannot read /proc/${serverPid}/stat`);
  process.exit(2);
}

const def = protoLoader.loadSync(args.proto, { keepCase: true });
const Conformance = grpc.loadPackageDefinition(def).nestc.conformance.Conformance;
// A channel of its own per client: grpc-js would otherwise share one subchannel (one connection) among them.
const clients = Array.from({ length: connections }, () =>
  new Conformance(url, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
const sumReq = { numbers: [1, 2, 3] };
const streamReq = { items: Array.from({ length: items }, (_, i) => `v${i}`), delay_ms: 0 };

// One call before the load: the connection is up and the method answers.
try {
  await new Promise((resolve, reject) => {
    const deadline = Date.now() + 10000;
    let pending = clients.length;
    for (const c of clients)
      c.Sum(sumReq, { deadline }, (err) => (err ? reject(err) : --pending || resolve()));
  });
} catch (err) {
  console.error(`grpc-client.mjs: the first call failed: ${err.message}`);
  process.exit(1);
}

let running = true;
let counting = false;
let calls = 0;
let messages = 0;
let errors = 0;
const latencies = []; // µs, calls finished inside the window
function done(client, t, ok) {
  if (ok) {
    calls++;
    if (counting) latencies.push((performance.now() - t) * 1000);
  } else {
    errors++;
  }
  if (running) fire(client);
}
function fire(client) {
  const t = performance.now();
  if (!stream) {
    client.Sum(sumReq, (err) => {
      if (!err) messages++;
      done(client, t, !err);
    });
    return;
  }
  const call = client.Streaming(streamReq);
  call.on('data', () => messages++);
  call.on('error', () => done(client, t, false));
  call.on('end', () => done(client, t, true));
}
for (const client of clients) for (let i = 0; i < inflight; i++) fire(client);

await sleep(warmup);
const c0 = calls;
const m0 = messages;
const e0 = errors;
const srv0 = cpuOf(serverPid);
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
counting = true;
await sleep(duration);
counting = false;
const c1 = calls;
const m1 = messages;
const e1 = errors;
const cpu = process.cpuUsage(cpu0);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const srv1 = cpuOf(serverPid);
const rss = serverPid ? rssOf(serverPid) : null;
running = false;

const requests = c1 - c0;
const msgs = m1 - m0;
latencies.sort((a, b) => a - b);
const pct = (q) =>
  latencies.length ? Number(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1)) : null;
const per = (s, n) => (s != null && n ? Number(((s * 1e6) / n).toFixed(3)) : null);
const out = {
  requests,
  messages: msgs,
  errors: e1 - e0,
  rps: Math.round(requests / secs),
  mps: Math.round(msgs / secs),
  p50_us: pct(0.5),
  p99_us: pct(0.99),
  connections,
  inflight,
  items: stream ? items : 1,
  mode: args.mode,
  duration_s: Number(secs.toFixed(3)),
  engine: 'grpc-js',
  client_cpu_us_per_resp: per((cpu.user + cpu.system) / 1e6, requests),
  client_cpu_us_per_msg: per((cpu.user + cpu.system) / 1e6, msgs),
  client_cpu_s: Number(((cpu.user + cpu.system) / 1e6).toFixed(3)),
};
if (serverPid) {
  const s = srv0 != null && srv1 != null ? srv1 - srv0 : null;
  out.server_cpu_s = s == null ? null : Number(s.toFixed(3));
  out.server_cpu_us_per_resp = per(s, requests);
  out.server_cpu_us_per_msg = per(s, msgs);
  out.server_rss_kib = rss;
}
out.transport = 'grpc';
console.log(JSON.stringify(out));
// Calls still in flight are abandoned: the figures are taken.
process.exit(0);
