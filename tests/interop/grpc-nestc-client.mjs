// `nestc send grpc://…` (DESIGN.md §5a) against gRPC servers that are not nestc: every conformance.proto
// method in its call shape, every status code, metadata, a deadline, UNIMPLEMENTED, a 4 MB message, a
// refused connection, and (against grpc-js) TLS and mutual TLS.
//
//   node grpc-nestc-client.mjs --nestc BIN --nest                 the NestJS reference (nest-grpc-server.mjs)
//   node grpc-nestc-client.mjs --nestc BIN --grpcjs [--tls DIR]   a plain grpc-js server of this script
//                                                                 (TLS: DIR/server.pem, server.key, ca.pem,
//                                                                 client.pem, client.key)
//
// Prints one line per case ("ok" / "FAIL" and why) and exits 1 if any failed.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const here = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    nestc: { type: 'string' },
    nest: { type: 'boolean', default: false },
    grpcjs: { type: 'boolean', default: false },
    tls: { type: 'string' },
    proto: { type: 'string', default: join(here, '..', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if (!args.nestc || args.nest === args.grpcjs || (args.tls && !args.grpcjs)) {
  console.error('usage: node grpc-nestc-client.mjs --nestc BIN (--nest | --grpcjs [--tls CERTDIR])');
  process.exit(2);
}
const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR || 1);

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

// ---- the plain grpc-js server: the conformance service as grpc-js code, no NestJS ----------------------------

function grpcjsService() {
  const sum = (r) => (r.numbers || []).reduce((a, b) => a + b, 0);
  return {
    Sum: (call, cb) => cb(null, { sum: sum(call.request) }),
    Echo: (call, cb) => cb(null, call.request),
    Exception: (call, cb) => cb({ code: call.request.code || 2, details: call.request.message }),
    Sleep: (call, cb) => {
      const t = setTimeout(() => cb(null, { ms: call.request.ms }), call.request.ms);
      call.on('cancelled', () => clearTimeout(t));
    },
    Context: (call, cb) => {
      const md = {};
      for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
      // response metadata, for `nestc send -v` (the NestJS reference sends none)
      const back = new grpc.Metadata();
      back.set('x-back', 'yes');
      back.set('x-back-bin', Buffer.from('hi'));
      call.sendMetadata(back);
      cb(null, { metadata: md, method: call.getPath() });
    },
    Streaming: (call) => {
      const items = call.request.items || [];
      const stop = call.request.fail_after > 0 ? Math.min(call.request.fail_after, items.length) : items.length;
      for (let i = 0; i < stop; i++) call.write({ index: i, value: items[i] });
      if (call.request.fail_after > 0) call.emit('error', { code: 9, details: `failed after ${stop} items` });
      else call.end();
    },
    ClientSum: (call, cb) => {
      let s = 0;
      call.on('data', (m) => (s += sum(m)));
      call.on('end', () => cb(null, { sum: s }));
    },
    BidiEcho: (call) => {
      call.on('data', (m) => call.write(m));
      call.on('end', () => call.end());
    },
  };
}

let server; // a child process (NestJS) or a grpc-js Server
let port;
if (args.nest) {
  port = await freePort();
  server = spawn(process.execPath, [join(here, 'nest-grpc-server.mjs'), '--port', String(port), '--proto', args.proto],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => server.kill('SIGTERM'));
  await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => String(d).includes('READY') && resolve());
    server.on('exit', (code) => reject(new Error(`nest-grpc-server exited ${code}`)));
  });
} else {
  const def = protoLoader.loadSync(args.proto, { keepCase: true });
  const svc = grpc.loadPackageDefinition(def).nestc.conformance.Conformance.service;
  const bind = (creds) =>
    new Promise((resolve, reject) => {
      const s = new grpc.Server();
      s.addService(svc, grpcjsService());
      s.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve([s, p])));
    });
  [server, port] = await bind(grpc.ServerCredentials.createInsecure());
}

// ---- running nestc ------------------------------------------------------------------------------------------

const run = (argv) =>
  new Promise((resolve) => {
    execFile(args.nestc, argv, { maxBuffer: 64 << 20, timeout: 20000 * factor }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });

const M = (m) => `nestc.conformance.Conformance/${m}`;
const send = (method, data, ...extra) =>
  run(['send', `grpc://127.0.0.1:${port}`, M(method), ...(data === undefined ? [] : [data]), '--proto', args.proto,
    ...extra]);
const lines = (s) => s.split('\n').filter((l) => l).map((l) => JSON.parse(l));

let failed = 0;
const check = (name, got, want) => {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : `\n     got  ${JSON.stringify(got)}\n     want ${JSON.stringify(want)}`}`);
};
// a field at its default value may be printed or not (DESIGN.md §5a: protobufjs senders put a 0 that was set on
// the wire, and a present field is printed): top-level zeros are left out before comparing
const dropZeros = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== 0));
const status = (r) => ({ exit: r.code, out: lines(r.stdout).map(dropZeros), err: r.stderr ? JSON.parse(r.stderr) : null });

// unary
check('Sum', status(await send('Sum', '{"numbers":[1,2,3]}')), { exit: 0, out: [{ sum: 6 }], err: null });
// proto3: 0 is the default value, so it is not on the wire (the CLI may omit it)
check('Sum of nothing', status(await send('Sum')), { exit: 0, out: [{}], err: null });
const echo = {
  text: 'hé', big: '-9007199254740993', flag: true, numbers: [1, 2, 3],
  nested: { name: 'n', value: 1, children: [{ name: 'c' }] }, blob: 'AQID', color: 'BLUE',
  choice_nested: { name: 'x' }, ratio: 0.25, ubig: '18446744073709551615', small: -5, tags: ['a', 'b'],
  counts: { one: 1, two: 2 }, items: [{ name: 'i', value: 2 }],
};
check('Echo (every field kind)', status(await send('Echo', JSON.stringify(echo))), { exit: 0, out: [echo], err: null });
// lowerCamelCase input names and 64-bit numbers are read too; an unknown field is refused (exit 2)
check('Echo lowerCamelCase input', status(await send('Echo', '{"choiceText":"t","big":5}')),
  { exit: 0, out: [{ big: '5', choice_text: 't' }], err: null });
check('Echo unknown field', (await send('Echo', '{"nope":1}')).code, 2);

// every status code: 0 → 2 UNKNOWN with the message (RpcException(message)); 1..16 → that code; exit 1, but 2 for
// 4 (a deadline) and 14 (unavailable), as DESIGN.md §5a says
for (let c = 0; c <= 16; c++) {
  const code = c || 2;
  check(`Exception code ${c}`, status(await send('Exception', JSON.stringify({ code: c, message: `m${c}` }))),
    { exit: code === 4 || code === 14 ? 2 : 1, out: [], err: { code, details: `m${c}` } });
}

// deadline: --timeout is the call's deadline (grpc-timeout), exit 2 with status 4
{
  const t0 = Date.now();
  const r = status(await send('Sleep', '{"ms":3000}', '--timeout', String(300 * factor)));
  check('Sleep past --timeout', { exit: r.exit, code: r.err && r.err.code, quick: Date.now() - t0 < 2500 * factor },
    { exit: 2, code: 4, quick: true });
  check('Sleep within --timeout', status(await send('Sleep', '{"ms":50}')), { exit: 0, out: [{ ms: 50 }], err: null });
}

// metadata out: text and -bin (base64 given, sent as binary; the server reports it as base64)
{
  const r = status(await send('Context', '{}', '--header', 'x-a=b', '--header', 'x-b-bin=AAEC'));
  const md = r.out[0] && r.out[0].metadata;
  check('Context metadata and method', { exit: r.exit, a: md && md['x-a'], b: md && md['x-b-bin'], method: r.out[0] && r.out[0].method },
    { exit: 0, a: 'b', b: 'AAEC', method: '/nestc.conformance.Conformance/Context' });
}

// metadata in (grpc-js only): -v prints the response headers on stderr, -bin values decoded
if (args.grpcjs) {
  const r = await send('Context', '{}', '-v');
  const line = r.stderr.split('\n').find((l) => l.startsWith('nestc: response headers '));
  const h = line ? JSON.parse(line.slice('nestc: response headers '.length)) : {};
  check('response metadata (-v)', { exit: r.code, back: h['x-back'], bin: h['x-back-bin'] }, { exit: 0, back: 'yes', bin: 'hi' });
}

// server streaming
check('Streaming', status(await send('Streaming', '{"items":["a","b","c"]}')),
  { exit: 0, out: [{ value: 'a' }, { index: 1, value: 'b' }, { index: 2, value: 'c' }], err: null });
check('Streaming fail_after', status(await send('Streaming', '{"items":["a","b","c"],"fail_after":1}')),
  { exit: 1, out: [{ value: 'a' }], err: { code: 9, details: 'failed after 1 items' } });

// client streaming and bidi: --stream, the data a JSON array of messages
check('ClientSum', status(await send('ClientSum', '[{"numbers":[1]},{"numbers":[2,3]}]', '--stream')),
  { exit: 0, out: [{ sum: 6 }], err: null });
check('ClientSum of nothing', status(await send('ClientSum', '[]', '--stream')), { exit: 0, out: [{}], err: null });
check('BidiEcho', status(await send('BidiEcho', '[{"text":"one"},{"text":"two"}]', '--stream')),
  { exit: 0, out: [{ text: 'one' }, { text: 'two' }], err: null });
// without --stream: the data is the one request message, then the half-close (nc_client_send's shape)
check('ClientSum, one message', status(await send('ClientSum', '{"numbers":[4,5]}')),
  { exit: 0, out: [{ sum: 9 }], err: null });
check('BidiEcho, one message', status(await send('BidiEcho', '{"text":"once"}')),
  { exit: 0, out: [{ text: 'once' }], err: null });

// UNIMPLEMENTED: declared without a handler; a method the proto lacks is refused before sending (exit 2)
{
  const r = status(await send('Unimplemented', '{}'));
  check('Unimplemented', { exit: r.exit, code: r.err && r.err.code }, { exit: 1, code: 12 });
  check('a method the proto does not define', (await send('Nope', '{}')).code, 2);
}

// 4 MB each way (under grpc-js's 4 MiB default)
{
  const dir = mkdtempSync(join(tmpdir(), 'nestc-grpc-'));
  const big = 'x'.repeat(4000000);
  writeFileSync(join(dir, 'big.json'), JSON.stringify({ text: big }));
  const r = await send('Echo', `@${join(dir, 'big.json')}`);
  rmSync(dir, { recursive: true });
  const out = r.code === 0 ? JSON.parse(r.stdout) : {};
  check('Echo 4 MB', { exit: r.code, len: out.text && out.text.length }, { exit: 0, len: big.length });
}

// compressed requests (defaultCompressionAlgorithm, grpc-js's grpc.default_compression_algorithm): the server
// reads gzip and deflate messages
for (const alg of ['gzip', 'deflate'])
  check(`Echo, ${alg} requests`, status(await send('Echo', JSON.stringify(echo), '--opt', `defaultCompressionAlgorithm=${alg}`)),
    { exit: 0, out: [echo], err: null });

// client keepalive (grpc.keepalive_time_ms): PINGs every 50 ms over a 500 ms call, each acknowledged by the
// server within 200 ms (an unanswered one would end the connection and the call with 14)
check('Sleep through keepalive PINGs', status(await send('Sleep', '{"ms":500}', '--opt', 'keepaliveTimeMs=50',
  '--opt', `keepaliveTimeoutMs=${200 * factor}`)), { exit: 0, out: [{ ms: 500 }], err: null });

// a server's GOAWAY (grpc-js's grpc.max_connection_age_ms: one every ~200 ms): the unary calls of one client
// (`nestc bench`, 4 in flight) go on over new connections, none fails
if (args.grpcjs) {
  const s = new grpc.Server({ 'grpc.max_connection_age_ms': 200 });
  const def = protoLoader.loadSync(args.proto, { keepCase: true });
  s.addService(grpc.loadPackageDefinition(def).nestc.conformance.Conformance.service, grpcjsService());
  const p = await new Promise((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, q) => (e ? reject(e) : resolve(q))));
  const r = await run(['bench', `grpc://127.0.0.1:${p}`, M('Sum'), '{"numbers":[1]}', '--proto', args.proto,
    '--duration', '1.5', '--warmup', '0.1', '--inflight', '4']);
  let j = {};
  try { j = JSON.parse(r.stdout); } catch { /* reported below */ }
  check('calls across GOAWAYs (grpc.max_connection_age_ms)', { exit: r.code, errors: j.errors, some: j.requests > 20 },
    { exit: 0, errors: 0, some: true });
  s.forceShutdown();
}

// no server: exit 2, status 14
{
  const p = await freePort();
  const r = await run(['send', `grpc://127.0.0.1:${p}`, M('Sum'), '{}', '--proto', args.proto]);
  check('connection refused', { exit: r.code, code: r.stderr ? JSON.parse(r.stderr).code : null }, { exit: 2, code: 14 });
}

// TLS (grpcs://, ALPN h2) and mutual TLS against grpc-js
if (args.tls) {
  const f = (n) => readFileSync(join(args.tls, n));
  const def = protoLoader.loadSync(args.proto, { keepCase: true });
  const svc = grpc.loadPackageDefinition(def).nestc.conformance.Conformance.service;
  const bind = (creds) =>
    new Promise((resolve, reject) => {
      const s = new grpc.Server();
      s.addService(svc, grpcjsService());
      s.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve([s, p])));
    });
  const keys = [{ cert_chain: f('server.pem'), private_key: f('server.key') }];
  const [s1, p1] = await bind(grpc.ServerCredentials.createSsl(null, keys, false));
  const [s2, p2] = await bind(grpc.ServerCredentials.createSsl(f('ca.pem'), keys, true));
  const ca = ['--ca', join(args.tls, 'ca.pem')];
  const mine = ['--cert', join(args.tls, 'client.pem'), '--key', join(args.tls, 'client.key')];
  const tsend = (p, ...extra) =>
    run(['send', `grpcs://localhost:${p}`, M('Sum'), '{"numbers":[4]}', '--proto', args.proto, ...extra]);
  check('TLS', status(await tsend(p1, ...ca)), { exit: 0, out: [{ sum: 4 }], err: null });
  check('TLS, an untrusted server', (await tsend(p1, '--ca', join(args.tls, 'untrusted-ca.pem'))).code, 2);
  const insecure = await tsend(p1, '--insecure'); // its stderr is the warning, not an error
  check('TLS, not verified (--insecure)', { exit: insecure.code, out: lines(insecure.stdout).map(dropZeros) }, { exit: 0, out: [{ sum: 4 }] });
  check('--insecure warns', /warning: --insecure/.test(insecure.stderr), true);
  check('TLS, the server not trusted without --insecure', (await tsend(p1)).code, 2);
  check('mutual TLS', status(await tsend(p2, ...ca, ...mine)), { exit: 0, out: [{ sum: 4 }], err: null });
  check('mutual TLS without a client certificate', (await tsend(p2, ...ca)).code, 2);
  s1.forceShutdown();
  s2.forceShutdown();
}

if (args.grpcjs) server.forceShutdown();
console.log(failed ? `${failed} case(s) failed` : 'all cases passed');
process.exit(failed ? 1 : 0);
