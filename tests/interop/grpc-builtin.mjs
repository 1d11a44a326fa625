// The grpc:// server's built-in health and reflection services, checked with grpc-js's own clients:
// grpc-health-check's service definition (Check, Watch, List) and the reflection.proto @grpc/reflection
// ships (v1 and v1alpha). The FileDescriptorProtos reflection returns are loaded with proto-loader's
// loadFileDescriptorSetFromBuffer (protobufjs's descriptor support), and methods of the conformance service
// are then called through what reflection alone described.
//
//   node grpc-builtin.mjs --nestc BIN
//
// Then the options beyond a default server: gzip-compressed responses (defaultCompressionAlgorithm),
// maxSendMessageLength and maxReceiveMessageLength with grpc-js's status and words; keepalive PINGs that
// grpc-js answers, and its keepalive client told "too_many_pings" by the server's PING policing.
//
// Prints one line per case and exits 1 if any failed.
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
// grpc-js's transport trace (read when it loads) tells how a connection ended: kept, not printed
process.env.GRPC_TRACE = 'transport';
process.env.GRPC_VERBOSITY = 'DEBUG';
const grpc = require('@grpc/grpc-js');
// NestJS's client (ClientGrpcProxy), loaded after the trace settings above
await import('reflect-metadata');
const { ClientProxyFactory, Transport } = await import('@nestjs/microservices');
const { firstValueFrom } = await import('rxjs');
const traces = [];
grpc.setLogger({ error: (...a) => traces.push(a.join(' ')) });
const protoLoader = require('@grpc/proto-loader');
const health = require('grpc-health-check');
const here = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    nestc: { type: 'string' },
    proto: { type: 'string', default: join(here, '..', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if (!args.nestc) {
  console.error('usage: node grpc-builtin.mjs --nestc BIN');
  process.exit(2);
}
const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR) || 1;
const deadline = () => Date.now() + 5000 * factor;

const servers = new Set();
process.on('exit', () => servers.forEach((s) => s.kill('SIGTERM')));
const start = async (...opts) => {
  const wrap = process.env.NESTC_WRAP ? process.env.NESTC_WRAP.split(/\s+/).filter((w) => w) : [];
  const argv = [...wrap, args.nestc, 'conformance', 'grpc://127.0.0.1:0', '--proto', args.proto,
    ...opts.flatMap((o) => ['--opt', o])];
  const server = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.add(server);
  const port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`nestc conformance exited ${code}`)));
  });
  return { server, url: `127.0.0.1:${port}` };
};
const stop = (server) => new Promise((resolve) => {
  server.once('exit', (c, sig) => { servers.delete(server); resolve(c === null ? sig : c); });
  server.kill('SIGTERM');
});

const results = [];
const canonical = (v) => JSON.stringify(v, (_k, x) =>
  x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b))) : x);
const check = (name, got, want) => {
  const g = canonical(got), w = canonical(want);
  results.push(g === w);
  console.log(g === w ? `ok   ${name}` : `FAIL ${name}\n     want ${w}\n     got  ${g}`);
};
const unary = (client, method, req) =>
  new Promise((resolve) => client[method](req, { deadline: deadline() }, (err, res) =>
    resolve(err ? { code: err.code, details: err.details } : { value: res })));

const { server, url } = await start();
const creds = grpc.credentials.createInsecure();

// ---- health: grpc-health-check's own service definition ---------------------------------------------
const Health = grpc.makeClientConstructor(health.service, 'grpc.health.v1.Health');
const hc = new Health(url, creds);
check('health Check ""', await unary(hc, 'check', { service: '' }), { value: { status: 'SERVING' } });
check('health Check service', await unary(hc, 'check', { service: 'nestc.conformance.Conformance' }),
  { value: { status: 'SERVING' } });
check('health Check itself', await unary(hc, 'check', { service: 'grpc.health.v1.Health' }), { value: { status: 'SERVING' } });
check('health Check unknown', await unary(hc, 'check', { service: 'no.Such' }),
  { code: 5, details: 'Health status unknown for service no.Such' });
{
  const r = await unary(hc, 'list', {});
  const s = r.value ? Object.fromEntries(Object.entries(r.value.statuses).map(([k, v]) => [k, v.status])) : r;
  check('health List', s, {
    '': 'SERVING', 'nestc.conformance.Conformance': 'SERVING', 'grpc.health.v1.Health': 'SERVING',
    'grpc.reflection.v1.ServerReflection': 'SERVING', 'grpc.reflection.v1alpha.ServerReflection': 'SERVING',
  });
}
{
  // NestJS's own client on the health service, as a NestJS application would probe it
  const nest = ClientProxyFactory.create({
    transport: Transport.GRPC,
    options: { url, package: 'grpc.health.v1', protoPath: health.protoPath, loader: { keepCase: true, enums: String } },
  });
  check('health Check "" through NestJS ClientGrpcProxy',
    await firstValueFrom(nest.getService('Health').check({ service: '' })), { status: 'SERVING' });
  await nest.close();
}
// Watch: SERVING now, NOT_SERVING when the server starts its graceful shutdown, then the call ends (14)
const watch = hc.watch({ service: '' });
const watched = [];
const watchEnd = new Promise((resolve) => {
  watch.on('data', (v) => watched.push(v.status));
  watch.on('error', (e) => resolve(e.code));
  watch.on('end', () => resolve(0));
});
const unknownWatch = hc.watch({ service: 'no.Such' });
unknownWatch.on('error', () => {}); // cancelled below
check('health Watch unknown', await new Promise((resolve) => unknownWatch.once('data', (v) => resolve(v.status))),
  'SERVICE_UNKNOWN');
unknownWatch.cancel();
await new Promise((resolve) => (watched.length ? resolve() : watch.once('data', resolve)));
check('health Watch now', watched, ['SERVING']);

// ---- reflection ----------------------------------------------------------------------------------------
const reflectionProto = (v) => join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto',
  'grpc', 'reflection', v, 'reflection.proto');
const reflectionClient = (v) => {
  const def = protoLoader.loadSync(reflectionProto(v), { keepCase: true, oneofs: true, bytes: Buffer });
  const pkg = grpc.loadPackageDefinition(def);
  return new pkg.grpc.reflection[v].ServerReflection(url, creds);
};
// one bidi stream; ask() writes a request and resolves with its response
const session = (client) => {
  const call = client.ServerReflectionInfo({ deadline: deadline() });
  const waiting = [];
  call.on('data', (r) => waiting.shift()(r));
  call.on('error', (e) => waiting.forEach((w) => w({ error: e.code })));
  return {
    ask: (req) => new Promise((resolve) => { waiting.push(resolve); call.write(req); }),
    end: () => new Promise((resolve) => { call.on('status', (s) => resolve(s.code)); call.end(); }),
  };
};
// FileDescriptorProto bytes → a FileDescriptorSet (repeated field 1) → proto-loader's package definition
const descriptorSet = (files) => Buffer.concat(files.flatMap((f) => {
  const len = [];
  for (let n = f.length; ; n >>>= 7) { if (n < 0x80) { len.push(n); break; } len.push((n & 0x7f) | 0x80); }
  return [Buffer.from([0x0a, ...len]), f];
}));

for (const v of ['v1', 'v1alpha']) {
  const rc = reflectionClient(v);
  const s = session(rc);
  const list = await s.ask({ list_services: '' });
  check(`reflection ${v} list_services`, (list.list_services_response?.service || []).map((x) => x.name).sort(), [
    'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection',
    'nestc.conformance.Conformance',
  ]);
  const bySym = await s.ask({ file_containing_symbol: 'nestc.conformance.Conformance' });
  const files = bySym.file_descriptor_response?.file_descriptor_proto || [];
  check(`reflection ${v} file_containing_symbol`, files.length >= 1, true);
  // the file's name as reflection gave it: asking for it by name gives the same bytes
  const desc = require('protobufjs/ext/descriptor');
  const first = files.length ? desc.FileDescriptorProto.decode(files[0]) : {};
  const byName = await s.ask({ file_by_filename: first.name || '?' });
  check(`reflection ${v} file_by_filename`, (byName.file_descriptor_response?.file_descriptor_proto || [])
    .map((b) => b.toString('base64')), files.map((b) => b.toString('base64')));
  check(`reflection ${v} method symbol`, (await s.ask({ file_containing_symbol: 'nestc.conformance.Conformance.Echo' }))
    .file_descriptor_response?.file_descriptor_proto?.length, files.length);
  check(`reflection ${v} message symbol`, (await s.ask({ file_containing_symbol: 'nestc.conformance.EchoMessage' }))
    .file_descriptor_response?.file_descriptor_proto?.length, files.length);
  const missing = await s.ask({ file_containing_symbol: 'no.Such' });
  check(`reflection ${v} unknown symbol`, missing.error_response?.error_code, 5);
  const noFile = await s.ask({ file_by_filename: 'none.proto' });
  check(`reflection ${v} unknown file`, noFile.error_response?.error_code, 5);
  const healthFile = await s.ask({ file_containing_symbol: 'grpc.health.v1.Health' });
  check(`reflection ${v} the health service's own file`, desc.FileDescriptorProto.decode(
    healthFile.file_descriptor_response.file_descriptor_proto[0]).name, 'grpc/health/v1/health.proto');
  check(`reflection ${v} stream ends OK`, await s.end(), 0);

  // call the conformance service with nothing but what reflection returned
  const def = protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet(files),
    { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true });
  const Svc = grpc.loadPackageDefinition(def).nestc.conformance.Conformance;
  const c = new Svc(url, creds);
  check(`reflected ${v} Sum`, await unary(c, 'Sum', { numbers: [1, 2, 3.5] }), { value: { sum: 6.5 } });
  const echo = {
    text: 'hi', big: '-9007199254740993', flag: true, numbers: [1, 2, 3], nested: { name: 'n', value: 1, children: [{ name: 'c' }] },
    blob: 'AQID', color: 'BLUE', choice_nested: { name: 'x', value: 0 }, ratio: 0.25,
    ubig: '18446744073709551615', small: -5, tags: ['a', 'b'], items: [{ name: 'i', value: 2 }],
    // protobufjs's fromDescriptor keeps a map as its repeated entry message (as it does with what grpc-js's
    // own reflection server returns): the same bytes on the wire as the map
    counts: [{ key: 'one', value: 1 }, { key: 'two', value: 2 }],
  };
  check(`reflected ${v} Echo (maps, oneof, enum, nesting)`, await unary(c, 'Echo', echo),
    { value: { ...echo, choice: 'choice_nested' } });
  c.close();
  rc.close();
}

// ---- graceful shutdown: the watch sees NOT_SERVING, then ends ---------------------------------------------
const code = await stop(server);
check('health Watch through shutdown', { watched, end: await watchEnd }, { watched: ['SERVING', 'NOT_SERVING'], end: 14 });
check('server exit', code, 0);
hc.close();

// ---- both turned off: UNIMPLEMENTED, as for any method the server does not have -----------------------
{
  const off = await start('healthCheck=false', 'reflection=false');
  const h = new Health(off.url, creds);
  check('healthCheck=false', (await unary(h, 'check', { service: '' })).code, 12);
  h.close();
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto('v1'), { keepCase: true, oneofs: true }));
  const r = new pkg.grpc.reflection.v1.ServerReflection(off.url, creds);
  const call = r.ServerReflectionInfo({ deadline: deadline() });
  call.on('data', () => {});
  const st = new Promise((resolve) => call.on('error', (e) => resolve(e.code)).on('end', () => resolve(0)));
  call.write({ list_services: '' });
  check('reflection=false', await st, 12);
  r.close();
  check('server exit (off)', await stop(off.server), 0);
}

// ---- compressed responses and message size limits ---------------------------------------------------
{
  const srv = await start('defaultCompressionAlgorithm=gzip', 'maxSendMessageLength=300', 'maxReceiveMessageLength=500');
  const def = protoLoader.loadSync(args.proto, { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true });
  const c = new (grpc.loadPackageDefinition(def).nestc.conformance.Conformance)(srv.url, creds);
  check('gzip responses: grpc-js reads them', await unary(c, 'Echo', { text: 'z'.repeat(200) }), { value: { text: 'z'.repeat(200) } });
  {
    // a grpc-js client that deflates its requests (grpc-js servers read deflate as well as gzip)
    const d = new (grpc.loadPackageDefinition(def).nestc.conformance.Conformance)(srv.url, creds,
      { 'grpc.default_compression_algorithm': 1 });
    check('deflate requests', await unary(d, 'Echo', { text: 'd'.repeat(250) }), { value: { text: 'd'.repeat(250) } });
    d.close();
  }
  check('maxSendMessageLength', await unary(c, 'Echo', { text: 'z'.repeat(400) }),
    { code: 8, details: 'Sent message larger than max (408 vs. 300)' });
  check('maxReceiveMessageLength', await unary(c, 'Echo', { text: 'z'.repeat(600) }),
    { code: 8, details: 'Received message larger than max (603 vs 500)' });
  c.close();
  {
    // NestJS's ClientGrpcProxy: the same gzip responses and limits
    const nest = ClientProxyFactory.create({
      transport: Transport.GRPC,
      options: { url: srv.url, package: 'nestc.conformance', protoPath: args.proto, loader: { keepCase: true } },
    });
    const svc = nest.getService('Conformance');
    check('gzip responses: NestJS ClientGrpcProxy reads them', await firstValueFrom(svc.echo({ text: 'y'.repeat(200) })),
      { text: 'y'.repeat(200) });
    check('maxSendMessageLength through NestJS', await firstValueFrom(svc.echo({ text: 'y'.repeat(400) }))
      .then(() => 'no error', (e) => [e.code, e.details]), [8, 'Sent message larger than max (408 vs. 300)']);
    await nest.close();
  }
  // the raw response: grpc-encoding gzip and the Compressed-Flag set only for a client that accepts gzip
  const protobuf = require('protobufjs');
  const root = protobuf.loadSync(args.proto);
  const SumRequest = root.lookupType('nestc.conformance.SumRequest'), SumReply = root.lookupType('nestc.conformance.SumReply');
  const raw = (accept, requestEncoding) => new Promise((resolve, reject) => {
    const session = http2.connect(`http://${srv.url}`);
    session.on('error', reject);
    const plainBody = SumRequest.encode({ numbers: [1, 2] }).finish();
    const body = requestEncoding === 'deflate' ? zlib.deflateSync(plainBody) : plainBody;
    const pre = Buffer.alloc(5);
    pre.writeUInt32BE(body.length, 1);
    pre[0] = requestEncoding ? 1 : 0;
    const headers = { ':method': 'POST', ':path': '/nestc.conformance.Conformance/Sum', 'content-type': 'application/grpc', te: 'trailers' };
    if (requestEncoding) headers['grpc-encoding'] = requestEncoding;
    if (accept) headers['grpc-accept-encoding'] = accept;
    const req = session.request(headers);
    let h = {}, t = {};
    const chunks = [];
    req.on('response', (x) => { h = x; });
    req.on('trailers', (x) => { t = x; });
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      session.close();
      const all = Buffer.concat(chunks);
      const flag = all[0], msg = all.subarray(5, 5 + all.readUInt32BE(1));
      const enc = h['grpc-encoding'];
      const plain = !flag ? msg : enc === 'deflate' ? zlib.inflateSync(msg) : zlib.gunzipSync(msg);
      resolve({ encoding: h['grpc-encoding'] || 'identity', flag, sum: SumReply.decode(plain).sum, status: t['grpc-status'] });
    });
    req.end(Buffer.concat([pre, body]));
  });
  check('gzip response to a client accepting gzip', await raw('identity,deflate,gzip'), { encoding: 'gzip', flag: 1, sum: 3, status: '0' });
  check('identity response to a client not accepting gzip', await raw(undefined), { encoding: 'identity', flag: 0, sum: 3, status: '0' });
  check('identity response to a client accepting deflate only', await raw('deflate'), { encoding: 'identity', flag: 0, sum: 3, status: '0' });
  check('a deflate request (zlib format)', await raw(undefined, 'deflate'), { encoding: 'identity', flag: 0, sum: 3, status: '0' });
  check('server exit (options)', await stop(srv.server), 0);
  const dsrv = await start('defaultCompressionAlgorithm=deflate');
  const url0 = srv.url;
  srv.url = dsrv.url;
  check('deflate response to a client accepting deflate', await raw('identity,deflate,gzip'), { encoding: 'deflate', flag: 1, sum: 3, status: '0' });
  srv.url = url0;
  const dc = new (grpc.loadPackageDefinition(def).nestc.conformance.Conformance)(dsrv.url, creds);
  check('deflate responses: grpc-js reads them', await unary(dc, 'Echo', { text: 'q'.repeat(200) }), { value: { text: 'q'.repeat(200) } });
  dc.close();
  check('server exit (deflate)', await stop(dsrv.server), 0);
}

// ---- keepalive: the server's PINGs answered by grpc-js; grpc-js's own keepalive policed -------------------
{
  const srv = await start('keepaliveTimeMs=50', `keepaliveTimeoutMs=${2000 * factor}`, 'http2MinPingIntervalWithoutDataMs=60000',
    'http2MaxPingStrikes=1', 'keepalivePermitWithoutCalls=true');
  const def = protoLoader.loadSync(args.proto, { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true });
  const Conformance = grpc.loadPackageDefinition(def).nestc.conformance.Conformance;
  const c = new Conformance(srv.url, creds);
  check('keepalive: a call through the server\'s PINGs', await unary(c, 'Sleep', { ms: 300 }), { value: { ms: 300 } });
  check('keepalive: the connection serves on', await unary(c, 'Sum', { numbers: [1] }), { value: { sum: 1 } });
  c.close();
  const k = new Conformance(srv.url, creds, { 'grpc.keepalive_time_ms': 20, 'grpc.keepalive_permit_without_calls': 1 });
  await unary(k, 'Sum', { numbers: [1] });
  const seen = () => traces.some((t) => /GOAWAY with code 11 and data too_many_pings/.test(t));
  for (let i = 0; i < 100 * factor && !seen(); i++) await new Promise((r) => setTimeout(r, 20));
  check('keepalive: a PING flood told too_many_pings (GOAWAY ENHANCE_YOUR_CALM)', seen(), true);
  k.close();
  check('server exit (keepalive)', await stop(srv.server), 0);
}

// ---- maxConnectionAgeMs: GOAWAY every ~150 ms; a grpc-js client's calls go on across them ------------------
{
  const srv = await start('maxConnectionAgeMs=150', `maxConnectionAgeGraceMs=${5000 * factor}`);
  const def = protoLoader.loadSync(args.proto, { keepCase: true });
  const c = new (grpc.loadPackageDefinition(def).nestc.conformance.Conformance)(srv.url, creds);
  const goaways = () => traces.filter((t) => /connection closed by GOAWAY with code 0/.test(t)).length;
  const before = goaways();
  // a call in flight across the GOAWAY finishes on its old connection
  const slow = unary(c, 'Sleep', { ms: 400 });
  let bad = 0, n = 0;
  for (const end = Date.now() + 700; Date.now() < end; n++) {
    const r = await unary(c, 'Sum', { numbers: [n] });
    if (!r.value || (r.value.sum || 0) !== n) bad++;
  }
  check('maxConnectionAgeMs: grpc-js calls across GOAWAYs', { bad, slow: await slow, goaway: goaways() > before },
    { bad: 0, slow: { value: { ms: 400 } }, goaway: true });
  c.close();
  check('server exit (max connection age)', await stop(srv.server), 0);
}

const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed}/${results.length} passed`);
process.exit(failed ? 1 : 0);
