// The gRPC conformance cases of DESIGN.md §5a, run by a plain @grpc/grpc-js client against a server.
//
//   node grpc-conformance.mjs --url HOST:PORT [--proto FILE]   check a running server
//   node grpc-conformance.mjs --nest [--proto FILE]            start nest-grpc-server.mjs on a free port first
//   node grpc-conformance.mjs --nestc BIN [--tls CERTDIR [--mtls]] [--workers N]
// --mtls: the server requires a client certificate signed by the test CA (mutual TLS); the client presents one,
// and a client without one is refused.
//                                                              start `BIN conformance grpc://127.0.0.1:0` first
//                                                              (TLS: CERTDIR/server.pem, server.key, ca.pem)
//
// Prints one line per case ("ok" / "FAIL" and why) and exits 1 if any failed. The client loads the proto with
// keepCase, 64-bit integers as strings, enums by name and bytes as base64, so results compare as JSON.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const here = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    nest: { type: 'boolean', default: false },
    nestc: { type: 'string' },
    tls: { type: 'string' },
    mtls: { type: 'boolean', default: false },
    workers: { type: 'string' },
    proto: { type: 'string', default: join(here, '..', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if ([args.url, args.nest || undefined, args.nestc].filter((x) => x).length !== 1 || (args.tls && !args.nestc)) {
  console.error('usage: node grpc-conformance.mjs --url HOST:PORT | --nest | --nestc BIN [--tls CERTDIR] [--proto FILE]');
  process.exit(2);
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

let server;
let adminPort; // nestc only: its admin endpoint
let url = args.url;
process.on('exit', () => server && server.kill('SIGTERM')); // also when a case throws
if (args.nest) {
  const port = await freePort();
  server = spawn(process.execPath, [join(here, 'nest-grpc-server.mjs'), '--port', String(port), '--proto', args.proto],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => String(d).includes('READY') && resolve());
    server.on('exit', (code) => reject(new Error(`nest-grpc-server exited ${code}`)));
  });
  url = `127.0.0.1:${port}`;
}
if (args.nestc) {
  // port 0: the server picks a free port and prints it on its readiness line
  const tls = args.tls ? ['--cert', join(args.tls, 'server.pem'), '--key', join(args.tls, 'server.key')] : [];
  if (args.tls && args.mtls) tls.push('--ca', join(args.tls, 'ca.pem'));
  if (args.workers) tls.push('--workers', args.workers);
  // NESTC_WRAP: the server under a tool (valgrind: its error exit code fails the run, see the end)
  const wrap = process.env.NESTC_WRAP ? process.env.NESTC_WRAP.split(/\s+/).filter((w) => w) : [];
  const argv = [...wrap, args.nestc];
  // --admin: the server's metrics show whether a cancelled call's handler stopped (below)
  server = spawn(argv[0], [...argv.slice(1), 'conformance', 'grpc://127.0.0.1:0', '--proto', args.proto, ...tls,
    '--admin', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      const a = /admin on port (\d+)/.exec(out);
      if (m && a) {
        adminPort = a[1];
        resolve(m[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`nestc conformance exited ${code}`)));
  });
  url = `${args.tls ? 'localhost' : '127.0.0.1'}:${port}`;
}

const def = protoLoader.loadSync(args.proto, { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true });
const pkg = grpc.loadPackageDefinition(def);
const tlsFile = (f) => readFileSync(join(args.tls, f));
const creds = !args.tls ? grpc.credentials.createInsecure()
  : args.mtls ? grpc.credentials.createSsl(tlsFile('ca.pem'), tlsFile('client.key'), tlsFile('client.pem'))
  : grpc.credentials.createSsl(tlsFile('ca.pem'));
const client = new pkg.nestc.conformance.Conformance(url, creds);
// call deadlines scale with the suite's time factor (a loaded machine, valgrind)
const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR) || 1;
const deadline = () => Date.now() + 5000 * factor;

const unary = (method, req, md = new grpc.Metadata()) =>
  new Promise((resolve) => client[method](req, md, { deadline: deadline() }, (err, res) =>
    resolve(err ? { code: err.code, details: err.details } : { value: res })));

const serverStream = (method, req) =>
  new Promise((resolve) => {
    const values = [];
    const call = client[method](req, { deadline: deadline() });
    call.on('data', (v) => values.push(v));
    call.on('error', (e) => resolve({ values, code: e.code, details: e.details }));
    call.on('end', () => resolve({ values, code: 0 }));
  });

const clientStream = (method, reqs) =>
  new Promise((resolve) => {
    const call = client[method]({ deadline: deadline() }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { value: res }));
    for (const r of reqs) call.write(r);
    call.end();
  });

const results = [];
// JSON with object members sorted: values compare whatever order the fields were decoded in
const canonical = (v) => JSON.stringify(v, (_k, x) =>
  x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b))) : x);
const check = (name, got, want) => {
  const g = canonical(got), w = canonical(want);
  results.push(g === w);
  console.log(g === w ? `ok   ${name}` : `FAIL ${name}\n     want ${w}\n     got  ${g}`);
};

const echo = {
  text: 'hi', big: '-9007199254740993', flag: true, numbers: [1, 2, 3], nested: { name: 'n', value: 1, children: [{ name: 'c' }] },
  blob: 'AQID', color: 'BLUE', choice_nested: { name: 'x', value: 0 }, ratio: 0.25,
  ubig: '18446744073709551615', small: -5, tags: ['a', 'b'], counts: { one: 1, two: 2 }, items: [{ name: 'i', value: 2 }],
};

check('Sum', await unary('Sum', { numbers: [1, 2, 3.5] }), { value: { sum: 6.5 } });
check('Sum of nothing', await unary('Sum', {}), { value: { sum: 0 } });
{
  // every member given comes back (a zero value given is sent, so it returns), nothing else; the oneof
  // member names the field that is set
  const r = await unary('Echo', echo);
  check('Echo', r, { value: { ...echo, choice: 'choice_nested' } });
}
check('Exception code 0', await unary('Exception', { code: 0, message: 'plain' }), { code: 2, details: 'plain' });
check('Exception code 3', await unary('Exception', { code: 3, message: 'bad numbers' }), { code: 3, details: 'bad numbers' });
{
  const t = Date.now();
  const [a, b] = await Promise.all([unary('Sleep', { ms: 300 }), unary('Sleep', { ms: 300 })]);
  check('Sleep', [a, b], [{ value: { ms: 300 } }, { value: { ms: 300 } }]);
  check('Sleep in parallel', Date.now() - t < 550, true);
}
{
  const md = new grpc.Metadata();
  md.set('x-trace', 't-1');
  md.set('x-data-bin', Buffer.from([0, 1, 2]));
  const r = await unary('Context', {}, md);
  const m = r.value ? r.value.metadata : {};
  check('Context metadata', [m['x-trace'], m['x-data-bin']], ['t-1', 'AAEC']);
  check('Context method', r.value && r.value.method, '/nestc.conformance.Conformance/Context');
}
check('Streaming', await serverStream('Streaming', { items: ['a', 'b', 'c'], delay_ms: 5 }),
  { values: [{ index: 0, value: 'a' }, { index: 1, value: 'b' }, { index: 2, value: 'c' }], code: 0 });
check('Streaming fail_after', await serverStream('Streaming', { items: ['a', 'b', 'c'], fail_after: 2 }),
  { values: [{ index: 0, value: 'a' }, { index: 1, value: 'b' }], code: 9, details: 'failed after 2 items' });
check('ClientSum', await clientStream('ClientSum', [{ numbers: [1, 2] }, { numbers: [3] }]), { value: { sum: 6 } });
check('ClientSum of nothing', await clientStream('ClientSum', []), { value: { sum: 0 } });
{
  // every message comes back before the client half-closes
  const call = client.BidiEcho({ deadline: deadline() });
  const got = [];
  const next = () => new Promise((resolve) => call.once('data', (v) => { got.push(v.text); resolve(); }));
  call.write({ text: 'one' });
  await next();
  call.write({ text: 'two' });
  await next();
  const end = new Promise((resolve) => call.on('status', (s) => resolve(s.code)));
  call.end();
  check('BidiEcho', { got, code: await end }, { got: ['one', 'two'], code: 0 });
}
{
  // a client that compresses every message with gzip (grpc-encoding: gzip, the Compressed-Flag set)
  const gz = new pkg.nestc.conformance.Conformance(url, creds, { 'grpc.default_compression_algorithm': 2 });
  const r = await new Promise((resolve) => gz.Echo({ text: 'z'.repeat(1000), numbers: [7] }, { deadline: deadline() },
    (err, res) => resolve(err ? { code: err.code, details: err.details } : { value: res })));
  check('Echo gzip', r, { value: { text: 'z'.repeat(1000), numbers: [7] } });
  gz.close();
}
check('Unimplemented', (await unary('Unimplemented', {})).code, 12);
if (adminPort) {
  // a client's cancel reaches the handler: a stream of 1000 items 20 ms apart, cancelled after two, ends on the
  // server (its handled counter says `canceled` and nothing stays in flight) long before its 20 s would pass
  const metric = async (re) => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return text.split('\n').filter((l) => re.test(l)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  };
  const canceledRe = /^nestc_server_handled_total\{.*Streaming.*outcome="canceled"/;
  const before = await metric(canceledRe);
  const got = await new Promise((resolve) => {
    let n = 0;
    const call = client.Streaming({ items: Array.from({ length: 1000 }, (_, i) => `v${i}`), delay_ms: 20 });
    call.on('data', () => { if (++n === 2) call.cancel(); });
    call.on('error', (e) => resolve(e.code));
    call.on('end', () => resolve('ended'));
  });
  let ended = false;
  for (const until = Date.now() + 5000 * factor; !ended && Date.now() < until;) {
    ended = (await metric(canceledRe)) > before && (await metric(/^nestc_server_in_flight\{.*Streaming/)) === 0;
    if (!ended) await new Promise((r) => setTimeout(r, 20));
  }
  check('cancel reaches the handler', { client: got, server_stopped: ended }, { client: 1, server_stopped: true });
}
if (args.tls) {
  // gRPC over TLS is h2 or nothing: a client offering only http/1.1 by ALPN is refused in the handshake
  const [host, port] = url.split(':');
  const r = await new Promise((resolve) => {
    const sock = tls.connect({ host, port: Number(port), ca: readFileSync(join(args.tls, 'ca.pem')), servername: host,
      ALPNProtocols: ['http/1.1'] });
    sock.on('secureConnect', () => { resolve('connected'); sock.destroy(); });
    sock.on('error', (e) => resolve(/no.application.protocol/i.test(e.message) ? 'refused' : e.message));
  });
  check('TLS without h2 refused', r, 'refused');
}
if (args.mtls) {
  // mutual TLS: a client without a certificate gets no service
  const anon = new pkg.nestc.conformance.Conformance(url, grpc.credentials.createSsl(tlsFile('ca.pem')));
  const r = await new Promise((resolve) => anon.Sum({ numbers: [1] }, { deadline: deadline() },
    (err) => resolve(err ? err.code : 0)));
  check('mTLS: a client without a certificate is refused', r, 14);
  anon.close();
}
{
  const r = await new Promise((resolve) => client.makeUnaryRequest('/nestc.conformance.Conformance/Nope', (x) => x,
    (x) => x, Buffer.alloc(0), { deadline: deadline() }, (err) => resolve(err && err.code)));
  check('unknown method', r, 12);
}

client.close();
if (server) {
  // a graceful stop; nestc must exit 0 (under NESTC_WRAP=valgrind, errors give another code)
  const code = await new Promise((resolve) => {
    server.once('exit', (c, sig) => resolve(c === null ? sig : c));
    server.kill('SIGTERM');
  });
  server = null;
  if (args.nestc) check('server exit', code, 0);
}
const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed}/${results.length} passed`);
process.exit(failed ? 1 : 0);
