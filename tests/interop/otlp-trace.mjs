// otlp-trace.mjs — W3C trace context and OTLP export (docs/observability.md "Trace context") against the
// OpenTelemetry JS packages and NestJS. Needs NESTC_BIN (the nestc CLI).
//   - An OTLP/HTTP receiver (node:http) takes POST /v1/traces from `nestc conformance --trace`; each span's
//     JSON shape is checked against what the OpenTelemetry JS exporter itself writes for a span
//     (@opentelemetry/otlp-transformer JsonTraceSerializer): the same fields with the same JSON types.
//   - nestc send --trace -> nestc server: the SERVER span has the printed trace id, a parent, the route as
//     its name, the transport attributes; an error reply gives status ERROR.
//   - NestJS client -> nestc server: a ClientProxy whose dispatch hook (NestJS 12 setOnDispatchHook) puts a
//     traceparent in the packet metadata: the nestc span continues that trace with that parent; without one,
//     a new trace starts and the call still works.
//   - nestc client -> NestJS server: `nestc send --trace` to the NestJS conformance server: NestJS ignores the
//     metadata it does not use, and the call works (the chain does not break).
//   - nestc client -> NestJS relay -> nestc server: a NestJS service in the middle that passes the packet
//     metadata it received on to its own call (TcpContext.getMetadata, setOnDispatchHook): the nestc
//     server's span is in the trace `nestc send --trace` started.
//   - `nestc send --trace` exports its own CLIENT span when it exits (server.address/port, the SERVER
//     span's parent; SERVER spans carry client.address/port): to an https receiver (node:https) with mutual
//     TLS (--certs: the interop test certificates) and an authorization header from
//     OTEL_EXPORTER_OTLP_HEADERS; a receiver that accepts and never answers delays its exit by
//     OTEL_BSP_EXPORT_TIMEOUT at most.
//   - OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip: the receiver inflates the body (Content-Encoding: gzip,
//     node:zlib) and the spans are whole (names, the parent); an unknown compression is refused.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf: the receiver decodes the binary request with a
//     protobuf wire reader of its own (field numbers of opentelemetry-proto), first proven on what the
//     OpenTelemetry JS ProtobufTraceSerializer writes; nestc's spans decode whole (ids, names, the parent,
//     kinds, times, string and int attributes, status); OTEL_EXPORTER_OTLP_PROTOCOL=grpc is refused.
//   - Retries: a receiver that answers 503 with Retry-After: 1, then 200: the span `nestc send --trace`
//     flushes as it exits arrives once, on the second request, a second later (within OTEL_BSP_EXPORT_TIMEOUT).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxyFactory, Ctx, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { firstValueFrom } from 'rxjs';

const here = dirname(fileURLToPath(import.meta.url));
const NESTC = process.env.NESTC_BIN;
if (!NESTC) throw new Error('NESTC_BIN is not set');
const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR || 1);
const certsAt = process.argv.indexOf('--certs');
const CERTS = certsAt > 0 ? process.argv[certsAt + 1] : null;
let failures = 0;
const check = (ok, what) => {
  if (ok) console.log(`ok   ${what}`);
  else {
    failures++;
    console.log(`FAIL ${what}`);
  }
};
const children = [];
const cleanup = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
process.on('exit', cleanup);

// ---- protobuf: a wire reader, and ExportTraceServiceRequest into its JSON shape ---------------------------
function pbFields(buf) { // field number -> values: varint and fixed64 as BigInt, length-delimited as Buffer
  const out = new Map();
  let i = 0;
  const varint = () => {
    let v = 0n, sh = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('protobuf: truncated varint');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << sh;
      sh += 7n;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint()), f = key >> 3, t = key & 7;
    let v;
    if (t === 0) v = varint();
    else if (t === 1) { v = buf.readBigUInt64LE(i); i += 8; }
    else if (t === 2) { const n = Number(varint()); if (i + n > buf.length) throw new Error('protobuf: truncated'); v = buf.subarray(i, i + n); i += n; }
    else if (t === 5) { v = buf.readUInt32LE(i); i += 4; }
    else throw new Error(`protobuf: wire type ${t}`);
    if (!out.has(f)) out.set(f, []);
    out.get(f).push(v);
  }
  return out;
}
const pbOne = (m, f) => m.get(f)?.[0];
const pbStr = (b) => (b === undefined ? undefined : Buffer.from(b).toString('utf8'));
function pbKeyValue(b) {
  const m = pbFields(b), any = pbFields(pbOne(m, 2) ?? Buffer.alloc(0));
  const value = any.has(1) ? { stringValue: pbStr(pbOne(any, 1)) } : any.has(3) ? { intValue: Number(BigInt.asIntN(64, pbOne(any, 3))) } : {};
  return { key: pbStr(pbOne(m, 1)), value };
}
function pbSpan(b) {
  const m = pbFields(b), st = pbFields(pbOne(m, 15) ?? Buffer.alloc(0));
  return {
    traceId: Buffer.from(pbOne(m, 1)).toString('hex'), spanId: Buffer.from(pbOne(m, 2)).toString('hex'),
    ...(m.has(4) && pbOne(m, 4).length ? { parentSpanId: Buffer.from(pbOne(m, 4)).toString('hex') } : {}),
    ...(m.has(3) ? { traceState: pbStr(pbOne(m, 3)) } : {}),
    name: pbStr(pbOne(m, 5)), kind: Number(pbOne(m, 6) ?? 0n),
    startTimeUnixNano: String(pbOne(m, 7)), endTimeUnixNano: String(pbOne(m, 8)),
    attributes: (m.get(9) ?? []).map(pbKeyValue),
    status: st.has(3) && pbOne(st, 3) ? { code: Number(pbOne(st, 3)), message: pbStr(pbOne(st, 2)) } : {},
  };
}
function pbRequest(buf) {
  return {
    resourceSpans: (pbFields(buf).get(1) ?? []).map((rsb) => {
      const rs = pbFields(rsb), res = pbFields(pbOne(rs, 1) ?? Buffer.alloc(0));
      return {
        resource: { attributes: (res.get(1) ?? []).map(pbKeyValue) },
        scopeSpans: (rs.get(2) ?? []).map((ssb) => {
          const ss = pbFields(ssb), scope = pbFields(pbOne(ss, 1) ?? Buffer.alloc(0));
          return { scope: { name: pbStr(pbOne(scope, 1)) }, spans: (ss.get(2) ?? []).map(pbSpan) };
        }),
      };
    }),
  };
}

// ---- the OTLP receiver ----------------------------------------------------------------------------------
const spans = [];
let posts = 0;
const waiters = [];
const heads = [];
const refusals = {}; // by the receiver's port: answers to give before accepting, [status, headers]
const receive = (req, res) => {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    posts++;
    heads.push({ headers: req.headers, tls: !!req.socket.encrypted, peerCert: req.socket.getPeerCertificate?.()?.subject?.CN, at: Date.now(), port: req.socket.localPort });
    if (refusals[req.socket.localPort]?.length) {
      const [status, headers] = refusals[req.socket.localPort].shift();
      res.writeHead(status, headers);
      res.end();
      return;
    }
    let body = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    const proto = req.headers['content-type'] === 'application/x-protobuf';
    const ok = req.method === 'POST' && req.url === '/v1/traces' && (proto || /application\/json/.test(req.headers['content-type']));
    check(ok, `collector: POST /v1/traces application/json or application/x-protobuf (${req.method} ${req.url} ${req.headers['content-type']})`);
    let r;
    try {
      r = proto ? pbRequest(body) : JSON.parse(body);
    } catch (e) {
      check(false, `collector: the body decodes (${e.message})`);
      res.writeHead(400);
      res.end();
      return;
    }
    for (const rs of r.resourceSpans) {
      const svc = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
      for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service: svc, scope: ss.scope, encoding: req.headers['content-encoding'], proto });
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
    for (const w of waiters.splice(0)) w();
  });
};
const receiver = createServer(receive);
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
const collector = `http://127.0.0.1:${receiver.address().port}`;

async function spanWhere(pred, what) {
  const deadline = Date.now() + 5000 * factor;
  for (;;) {
    const s = spans.find(pred);
    if (s) return s;
    if (Date.now() > deadline) {
      check(false, `a span arrives: ${what}`);
      return null;
    }
    await new Promise((r) => {
      waiters.push(r);
      setTimeout(r, 100);
    });
  }
}

// ---- the servers ----------------------------------------------------------------------------------------
function start(cmd, args, env, ready) {
  const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  const rl = createInterface({ input: c.stdout });
  return new Promise((resolve, reject) => {
    rl.on('line', (l) => {
      const m = ready.exec(l);
      if (m) resolve(Number(m[1]));
    });
    c.on('exit', (code) => reject(new Error(`${cmd} exited with ${code}`)));
  });
}

const otelEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: collector, OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_SERVICE_NAME: 'nestc-conformance' };
const nestcPort = await start(NESTC, ['conformance', 'tcp://127.0.0.1:0', '--trace'], otelEnv, /listening on port (\d+)/);
const nestPort = await start(process.execPath, [join(here, 'nest-server.mjs'), '--port', '0'], {}, /^READY (\d+)/);

function nestcSend(port, pattern, data, env = otelEnv) {
  return new Promise((resolve) => {
    const c = spawn(NESTC, ['send', `tcp://127.0.0.1:${port}`, pattern, data, '--trace'], { env: { ...process.env, ...env } });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => resolve({ code, out, err, traceId: /trace id ([0-9a-f]{32})/.exec(err)?.[1] }));
  });
}

// ---- the shape the OpenTelemetry JS exporter writes ------------------------------------------------------
const refSpan = {
  name: 'ref',
  kind: 1,
  spanContext: () => ({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, traceState: undefined }),
  parentSpanContext: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b8', traceFlags: 1 },
  startTime: [1, 0],
  endTime: [2, 0],
  status: { code: 2, message: 'x' },
  attributes: { 'rpc.system': 'nestjs', 'server.port': 4318 },
  links: [],
  events: [],
  duration: [1, 0],
  ended: true,
  resource: { attributes: { 'service.name': 'ref' }, schemaUrl: undefined },
  instrumentationScope: { name: 'ref' },
  droppedAttributesCount: 0,
  droppedEventsCount: 0,
  droppedLinksCount: 0,
};
const ref = JSON.parse(new TextDecoder().decode(JsonTraceSerializer.serializeRequest([refSpan])));
const refOut = ref.resourceSpans[0].scopeSpans[0].spans[0];
const typeOf = (v) => (Array.isArray(v) ? 'array' : typeof v);
function sameShape(s, what) {
  // every field nestc writes is one the OpenTelemetry exporter writes, with the same JSON type
  for (const k of ['traceId', 'spanId', 'parentSpanId', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'status']) {
    if (!(k in s)) continue;
    if (typeOf(s[k]) !== typeOf(refOut[k])) return check(false, `${what}: ${k} is a ${typeOf(s[k])}, OpenTelemetry writes a ${typeOf(refOut[k])}`);
  }
  check(/^[0-9a-f]{32}$/.test(s.traceId) && /^[0-9a-f]{16}$/.test(s.spanId) && /^[0-9a-f]{16}$/.test(refOut.spanId), `${what}: ids as lowercase hex, as OpenTelemetry writes them`);
  check(typeOf(refOut.startTimeUnixNano) === typeOf(s.startTimeUnixNano) && BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano), `${what}: times`);
  const refInt = refOut.attributes.find((a) => a.key === 'server.port').value;
  check(s.attributes.every((a) => typeof a.key === 'string' && (typeof a.value.stringValue === 'string' || ('intValue' in a.value && typeof a.value.intValue === typeof refInt.intValue))), `${what}: attributes {key, value: {stringValue | intValue}}, intValue as OpenTelemetry writes it`);
  check(typeof refOut.status.code === typeOf(s.status.code ?? 0), `${what}: status.code a number`);
}
const attr = (s, k) => s.attributes.find((a) => a.key === k)?.value.stringValue;
const intAttr = (s, k) => s.attributes.find((a) => a.key === k)?.value.intValue;

// ---- nestc send --trace -> nestc server --------------------------------------------------------------------
const r1 = await nestcSend(nestcPort, 'sum', '[1,2,3]');
check(r1.code === 0 && r1.out.trim() === '6' && r1.traceId, `nestc send --trace sum: 6, trace id ${r1.traceId}`);
const s1 = await spanWhere((s) => s.traceId === r1.traceId && s.kind === 2, 'the sum SERVER span');
if (s1) {
  check(s1.name === 'sum' && s1.kind === 2 && /^[0-9a-f]{16}$/.test(s1.parentSpanId ?? ''), 'SERVER span: name sum, kind SERVER, a parent (the send\'s CLIENT span)');
  check(attr(s1, 'rpc.system') === 'nestjs' && attr(s1, 'nestjs.transport') === 'tcp' && attr(s1, 'rpc.method') === 'sum', 'attributes rpc.system, rpc.method, nestjs.transport');
  check(!s1.status.code && s1.service === 'nestc-conformance', 'status unset, service.name from OTEL_SERVICE_NAME');
  sameShape(s1, 'sum span');
  check(attr(s1, 'client.address') === '127.0.0.1' && intAttr(s1, 'client.port') > 0 && attr(s1, 'network.peer.address') === '127.0.0.1', 'SERVER span: client.address/port, network.peer.address (the send\'s connection)');
}
// the send's own CLIENT span, exported when `nestc send` exits
const c1 = await spanWhere((s) => s.traceId === r1.traceId && s.kind === 3, 'the sum CLIENT span of nestc send');
if (c1 && s1) {
  check(c1.name === 'sum' && s1.parentSpanId === c1.spanId, 'CLIENT span of nestc send: name sum, the SERVER span\'s parent');
  check(!c1.parentSpanId, 'CLIENT span of nestc send: the root of its trace (no parent left unexported)');
  check(attr(c1, 'server.address') === '127.0.0.1' && intAttr(c1, 'server.port') === nestcPort && attr(c1, 'rpc.system') === 'nestjs', 'CLIENT span: server.address/port from the URL, rpc.system');
  sameShape(c1, 'sum CLIENT span');
}
const r2 = await nestcSend(nestcPort, 'exception', '{"message":"no"}');
check(r2.code === 1 && r2.traceId, 'nestc send --trace exception: an error reply');
const s2 = await spanWhere((s) => s.traceId === r2.traceId && s.kind === 2, 'the exception SERVER span');
if (s2) check(s2.name === 'exception' && s2.status.code === 2 && typeof s2.status.message === 'string', 'exception span: status ERROR with a message');

// ---- NestJS client -> nestc server ------------------------------------------------------------------------
const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port: nestcPort } });
const given = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' };
let inject = true;
client.setOnDispatchHook((packet) => {
  if (inject) packet.metadata = { ...(packet.metadata ?? {}), traceparent: `00-${given.traceId}-${given.spanId}-01`, tracestate: 'vendor=1' };
});
await client.connect();
check((await firstValueFrom(client.send('sum', [4, 5]))) === 9, 'NestJS client (traceparent in metadata) -> nestc server: 9');
const s3 = await spanWhere((s) => s.traceId === given.traceId, 'the span continuing the NestJS client\'s trace');
if (s3) check(s3.parentSpanId === given.spanId && s3.name === 'sum' && s3.traceState === 'vendor=1', 'nestc continues the NestJS client\'s trace: parent, tracestate');
inject = false;
const before = spans.length;
check((await firstValueFrom(client.send('sum', [1, 1]))) === 2, 'NestJS client without trace context -> nestc server: 2');
const s4 = await spanWhere((s, i) => spans.indexOf(s) >= before && s.name === 'sum', 'a new trace');
if (s4) check(!s4.parentSpanId && s4.traceId !== given.traceId, 'without context: a new trace (no parent)');
await client.close();

// ---- nestc client -> NestJS server ------------------------------------------------------------------------
const r5 = await nestcSend(nestPort, 'sum', '[2,3]');
check(r5.code === 0 && r5.out.trim() === '5' && r5.traceId, 'nestc send --trace -> NestJS server: 5 (the metadata does not disturb it)');
const r6 = await nestcSend(nestPort, 'context', 'null');
check(r6.code === 0 && JSON.parse(r6.out).pattern === 'context', 'nestc send --trace -> NestJS context: answered');

// ---- nestc client -> NestJS relay -> nestc server -----------------------------------------------------------
// The relay passes on the metadata of the message it handles (what a NestJS application does to carry a
// trace: NestJS forwards nothing by itself). One call at a time here, so a variable holds "the current one".
const downstream = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port: nestcPort } });
let relayed;
downstream.setOnDispatchHook((packet) => {
  if (relayed) packet.metadata = { ...(packet.metadata ?? {}), ...relayed };
});
class Relay {
  async relay(data, ctx) {
    relayed = ctx.getMetadata();
    try {
      return await firstValueFrom(downstream.send('sum', data));
    } finally {
      relayed = undefined;
    }
  }
}
MessagePattern('relay')(Relay.prototype, 'relay', Object.getOwnPropertyDescriptor(Relay.prototype, 'relay'));
Payload()(Relay.prototype, 'relay', 0);
Ctx()(Relay.prototype, 'relay', 1);
Controller()(Relay);
class RelayModule {}
Module({ controllers: [Relay] })(RelayModule);
const relayApp = await NestFactory.createMicroservice(RelayModule, { transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 }, logger: ['error', 'warn'] });
await relayApp.listen();
await downstream.connect();
const r7 = await nestcSend(relayApp.unwrap().address().port, 'relay', '[20,22]');
check(r7.code === 0 && r7.out.trim() === '42' && r7.traceId, 'nestc send --trace -> NestJS relay -> nestc server: 42');
const s7 = await spanWhere((s) => s.traceId === r7.traceId && s.kind === 2, 'the nestc server span behind the NestJS relay');
if (s7) check(s7.name === 'sum' && /^[0-9a-f]{16}$/.test(s7.parentSpanId ?? ''), 'behind the relay: the same trace, with a parent (the send\'s CLIENT span, passed on by NestJS)');
await downstream.close();
await relayApp.close();

// ---- nestc send --trace -> an https receiver (mutual TLS, an authorization header) --------------------------
if (CERTS) {
  const tlsReceiver = createHttpsServer({
    key: readFileSync(join(CERTS, 'server.key')), cert: readFileSync(join(CERTS, 'server.pem')),
    ca: readFileSync(join(CERTS, 'ca.pem')), requestCert: true, rejectUnauthorized: true,
  }, receive);
  tlsReceiver.listen(0, '127.0.0.1');
  await once(tlsReceiver, 'listening');
  const tlsEnv = {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `https://localhost:${tlsReceiver.address().port}/v1/traces`,
    OTEL_EXPORTER_OTLP_CERTIFICATE: join(CERTS, 'ca.pem'),
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: join(CERTS, 'client.pem'),
    OTEL_EXPORTER_OTLP_CLIENT_KEY: join(CERTS, 'client.key'),
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20t0k,x-scope=tracing',
  };
  const r8 = await nestcSend(nestcPort, 'sum', '[7,8]', tlsEnv);
  check(r8.code === 0 && r8.out.trim() === '15' && r8.traceId, 'nestc send --trace (https collector): 15');
  const c8 = await spanWhere((s) => s.traceId === r8.traceId && s.kind === 3, 'the CLIENT span over https');
  const h8 = heads.find((h) => h.tls);
  check(c8 && h8 && h8.headers.authorization === 'Bearer t0k' && h8.headers['x-scope'] === 'tracing', 'https collector: the span arrives over TLS with the OTEL_EXPORTER_OTLP_HEADERS headers');
  check(h8?.peerCert != null, `https collector: the exporter presented its client certificate (${h8?.peerCert})`);
  // a CA that does not match: nothing arrives, and send still answers
  const r9 = await nestcSend(nestcPort, 'sum', '[1,1]', { ...tlsEnv, OTEL_EXPORTER_OTLP_CERTIFICATE: join(CERTS, 'untrusted-ca.pem') });
  check(r9.code === 0 && r9.out.trim() === '2', 'untrusted collector certificate: the call still works');
  await new Promise((r) => setTimeout(r, 200 * factor));
  check(!spans.some((s) => s.traceId === r9.traceId && s.kind === 3), 'untrusted collector certificate: no span sent');
  const bad = await nestcSend(nestcPort, 'sum', '[1,1]', { ...tlsEnv, OTEL_EXPORTER_OTLP_HEADERS: 'x=a%0d%0aEvil: 1' });
  check(bad.code === 2 && /--trace/.test(bad.err), `OTEL_EXPORTER_OTLP_HEADERS with CR LF refused (${bad.err.trim().split('\n').pop()})`);
  tlsReceiver.close();
}

// ---- gzip: the receiver inflates the bodies ------------------------------------------------------------------
const g1 = await nestcSend(nestcPort, 'sum', '[4,5]', { ...otelEnv, OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip' });
check(g1.code === 0 && g1.out.trim() === '9' && g1.traceId, 'nestc send --trace, gzip: 9');
const gc = await spanWhere((s) => s.traceId === g1.traceId && s.kind === 3, 'the gzip CLIENT span');
const gs = await spanWhere((s) => s.traceId === g1.traceId && s.kind === 2, 'its SERVER span');
check(gc && gc.encoding === 'gzip' && gc.name === 'sum' && !gc.parentSpanId, `gzip: the CLIENT span inflated whole (Content-Encoding: ${gc?.encoding}, name ${gc?.name})`);
if (gc) sameShape(gc, 'gzip CLIENT span');
check(gs && gc && gs.parentSpanId === gc.spanId, 'gzip: the SERVER span\'s parent is the gzip CLIENT span');
const g2 = await nestcSend(nestcPort, 'sum', '[1,1]', { ...otelEnv, OTEL_EXPORTER_OTLP_COMPRESSION: 'br' });
check(g2.code === 2 && /compression/.test(g2.err), `OTEL_EXPORTER_OTLP_COMPRESSION=br refused (${g2.err.trim().split('\n').pop()})`);

// ---- http/protobuf: decoded by the receiver ----------------------------------------------------------------
// the reader first on what OpenTelemetry JS itself writes: the same span as its JSON serializer's
const refPb = pbRequest(Buffer.from(ProtobufTraceSerializer.serializeRequest([refSpan])));
const refPbSpan = refPb.resourceSpans[0].scopeSpans[0].spans[0];
check(refPbSpan.traceId === refOut.traceId && refPbSpan.spanId === refOut.spanId && refPbSpan.name === refOut.name && refPbSpan.kind === refOut.kind && refPbSpan.startTimeUnixNano === String(refOut.startTimeUnixNano) && refPbSpan.attributes.find((a) => a.key === 'server.port')?.value.intValue === Number(refOut.attributes.find((a) => a.key === 'server.port').value.intValue), 'protobuf reader: decodes the OpenTelemetry JS ProtobufTraceSerializer\'s span as its JSON serializer writes it');
for (const [what, env] of [['http/protobuf', { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }], ['http/protobuf + gzip', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' }]]) {
  const p1 = await nestcSend(nestcPort, 'exception', '{"message":"pb"}', { ...otelEnv, ...env });
  check(p1.code !== 0 && p1.traceId, `nestc send --trace, ${what}: the exception call ends in error`);
  const pc = await spanWhere((s) => s.traceId === p1.traceId && s.kind === 3, `the ${what} CLIENT span`);
  const ps = await spanWhere((s) => s.traceId === p1.traceId && s.kind === 2, 'its SERVER span');
  check(pc && pc.proto && pc.name === 'exception' && !pc.parentSpanId && pc.service === 'nestc-conformance', `${what}: the CLIENT span decodes (name ${pc?.name}, service ${pc?.service}, encoding ${pc?.encoding ?? 'identity'})`);
  if (pc) sameShape(pc, `${what} CLIENT span`);
  check(pc && attr(pc, 'server.address') === '127.0.0.1' && intAttr(pc, 'server.port') === nestcPort && attr(pc, 'rpc.method') === 'exception', `${what}: string and int attributes (server.address ${attr(pc ?? { attributes: [] }, 'server.address')}, server.port ${intAttr(pc ?? { attributes: [] }, 'server.port')})`);
  check(pc && pc.status.code === 2 && typeof pc.status.message === 'string', `${what}: status ERROR with a message (${pc?.status.message})`);
  check(ps && pc && !ps.proto && ps.parentSpanId === pc.spanId, `${what}: the SERVER span (JSON) has the protobuf CLIENT span as its parent`);
  check(pc && BigInt(pc.endTimeUnixNano) >= BigInt(pc.startTimeUnixNano) && BigInt(pc.startTimeUnixNano) > 1600000000000000000n, `${what}: times as fixed64 nanoseconds`);
  if (what.includes('gzip')) check(pc?.encoding === 'gzip', `${what}: Content-Encoding gzip`);
}
const p3 = await nestcSend(nestcPort, 'sum', '[1,1]', { ...otelEnv, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
check(p3.code === 2 && /protocol/.test(p3.err), `OTEL_EXPORTER_OTLP_PROTOCOL=grpc refused (${p3.err.trim().split('\n').pop()})`);

// ---- retry: 503 with Retry-After, then 200 ------------------------------------------------------------------
// a receiver of its own, so that the conformance server's batches do not take the 503
const flaky = createServer(receive);
flaky.listen(0, '127.0.0.1');
await once(flaky, 'listening');
const flakyPort = flaky.address().port;
refusals[flakyPort] = [[503, { 'retry-after': '1' }]];
const rr = await nestcSend(nestcPort, 'sum', '[3,3]', { ...otelEnv, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${flakyPort}` });
check(rr.code === 0 && rr.out.trim() === '6' && rr.traceId, 'nestc send --trace, a collector answering 503 first: 6');
await spanWhere((s) => s.traceId === rr.traceId && s.kind === 3, 'the CLIENT span, retried');
const sent = spans.filter((s) => s.traceId === rr.traceId && s.kind === 3).length;
const tries = heads.filter((h) => h.port === flakyPort);
const gap = tries.length >= 2 ? tries[tries.length - 1].at - tries[0].at : -1;
check(sent === 1 && tries.length === 2 && gap >= 900, `503 + Retry-After: 1: the CLIENT span arrives once, on the second of ${tries.length} requests, ${gap} ms after the first`);
flaky.close();

// ---- a receiver that accepts and never answers: exit bounded by OTEL_BSP_EXPORT_TIMEOUT -------------------
const silent = createNetServer(() => {}); // accepts, never reads nor writes
silent.listen(0, '127.0.0.1');
await once(silent, 'listening');
const t0 = Date.now();
const r10 = await nestcSend(nestcPort, 'sum', '[2,2]', { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${silent.address().port}`, OTEL_BSP_EXPORT_TIMEOUT: '400' });
const took = Date.now() - t0;
check(r10.code === 0 && r10.out.trim() === '4' && took >= 350 && took < 400 + 2000 * factor, `a collector that never answers: nestc send exits after the flush bound (${took} ms, bound 400 ms)`);
silent.close();

cleanup();
receiver.close();
console.log(failures ? `${failures} check(s) failed` : `all checks passed (${spans.length} spans in ${posts} requests)`);
process.exit(failures ? 1 : 0);
