// Drivers that carry the conformance cases to a server (contract in conformance-cases.mjs):
//   NestDriver — a real NestJS client (ClientProxyFactory: ClientTCP, ClientRedis for redis:// and
//                rediss://, ClientNats for nats://, ClientMqtt for mqtt:// and mqtts://, ClientRMQ for amqp://
//                and amqps://, ClientKafka for kafka://), so it proves wire compatibility with Nest.
//   CliDriver  — spawns `nestc send` / `nestc emit` (DESIGN.md §5), one process per request.
// Both know the URL scheme (`driver.scheme`), which some cases depend on, and their own kind (`driver.kind`:
// 'nest' or 'cli'). On NATS, send() also takes message headers: {headers: [[name, value], ...]} (pairs, so a
// name may repeat) — NestDriver sends them as a NatsRecord, CliDriver as `--header name=value` flags. On MQTT 5
// (?protocolVersion=5 on the URL) the same headers are MQTT 5 user properties (NestDriver: an MqttRecord); on
// RabbitMQ the AMQP headers table (NestDriver: an RmqRecord; one value per name). On Kafka (kafka://H:P,H:P,…,
// NestDriver: ClientKafka) they are record headers, and send() also takes {key}: the record key (NestDriver: a
// message-shaped object {key, value, headers}, as Nest 12.1.1 has no Kafka record builder; spec kafka.md §4).
import 'reflect-metadata';
// KafkaJS 2 warns on every producer that its default partitioner changed in 2.0 (nothing here depends on it).
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Logger } from '@nestjs/common';
import {
  ClientProxyFactory,
  MqttRecordBuilder,
  NatsRecordBuilder,
  RmqRecordBuilder,
  Transport,
} from '@nestjs/microservices';
import { TimeoutError, lastValueFrom, tap, timeout, toArray } from 'rxjs';
import { scaled } from './timing.mjs';

const DEFAULT_TIMEOUT_MS = scaled(10000);

// ClientRedis logs "Connected to Redis…" at log level on stdout, in the middle of the TAP output.
Logger.overrideLogger(['error', 'warn']);

// tcp://host:port, tls://host:port, redis://host[:port][?query], rediss://…, nats://host[:port][?query],
// mqtt://host[:port][?query], mqtts://… → {scheme, host, port} (brokers: the broker's address; a query such as
// ?wildcards=true or ?queue=q is a server option, clients ignore it; MQTT's ?protocolVersion=5 is for both, and
// so is RabbitMQ's query: amqp://host[:port]?queue=Q[&wildcards=true…], amqps://…).
const DEFAULT_PORT = { redis: 6379, rediss: 6379, nats: 4222, mqtt: 1883, mqtts: 8883, amqp: 5672, amqps: 5671 };
export function parseUrl(url) {
  // kafka://H:P,H:P,… (several bootstrap brokers) is no WHATWG URL: host and port are the first broker's.
  if (url.startsWith('kafka://')) {
    const brokers = url.slice(8).split(/[/?]/)[0].split(',');
    const u = new URL(`kafka://${brokers[0]}`);
    if (!u.port) throw new Error(`unsupported URL: ${url} (kafka://HOST:PORT[,HOST:PORT…])`);
    return { scheme: 'kafka', host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), brokers };
  }
  const u = new URL(url);
  const scheme = u.protocol.replace(/:$/, '');
  const broker = scheme in DEFAULT_PORT;
  if (!(broker || ['tcp', 'tls'].includes(scheme)) || !(u.port || broker)) throw new Error(`unsupported URL: ${url}`);
  return { scheme, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || DEFAULT_PORT[scheme]) };
}

export const isRedis = (scheme) => scheme === 'redis' || scheme === 'rediss';
export const isNats = (scheme) => scheme === 'nats';
export const isMqtt = (scheme) => scheme === 'mqtt' || scheme === 'mqtts';
export const isRmq = (scheme) => scheme === 'amqp' || scheme === 'amqps';
export const isKafka = (scheme) => scheme === 'kafka';

// Kafka: every route the suite sends requests to. ClientKafka consumes '<route>.reply' only for the routes
// declared with subscribeToResponseOf() before it connects (a send() to any other fails at once: spec kafka.md
// §2). 'nope' is the suite's unknown pattern: it has a reply topic too, so the request goes out and meets no
// handler.
export const KAFKA_ROUTES = ['sum', 'asyncSum', 'streamSum', 'streaming', 'exception', 'echo', 'sleep', 'context', 'events', 'nope'];

// KafkaJS settings for the tests' mock cluster (the server's are in nest-server.mjs, with the reasons): a group of
// its own per client, a 6 s session, 100 ms fetch waits, reply topics read from the beginning (each run has a
// fresh cluster, and a reply produced before the first fetch resolved "latest" would be skipped), retries every
// 100 ms while freshly created topics get their leaders.
function kafkaClientOptions(brokers) {
  return {
    client: { brokers, clientId: 'nestc-interop', retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 } },
    consumer: {
      groupId: `nestc-interop-${randomUUID()}`,
      sessionTimeout: 6000,
      rebalanceTimeout: 6000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 100,
    },
    subscribe: { fromBeginning: true },
  };
}

// nats.js's headers() (MsgHdrs), loaded on first use: NatsRecordBuilder needs the library's own object.
let natsHeaders;
async function natsHeadersOf(pairs) {
  natsHeaders ??= (await import('@nats-io/transport-node')).headers;
  const h = natsHeaders();
  for (const [k, v] of pairs) h.append(k, v);
  return h;
}

export class NestDriver {
  kind = 'nest';

  // tls: {ca, cert, key} file paths (each optional)
  constructor(url, tls = {}) {
    const { scheme, host, port, brokers } = parseUrl(url);
    this.scheme = scheme;
    let tlsOptions;
    if (scheme === 'tls' || scheme === 'rediss') {
      tlsOptions = { servername: host, rejectUnauthorized: true };
      for (const k of ['ca', 'cert', 'key']) if (tls[k]) tlsOptions[k] = readFileSync(tls[k]);
    }
    if (isRedis(scheme)) {
      // retryAttempts: without it ioredis never reconnects (the first connection loss ends the client).
      // Redis never answers a request nobody is subscribed to: the per-call timeout in send() covers that.
      const options = { host, port, retryAttempts: 5, retryDelay: 200 };
      if (tlsOptions) options.tls = tlsOptions;
      this.client = ClientProxyFactory.create({ transport: Transport.REDIS, options });
    } else if (isNats(scheme)) {
      // One scheme for plain and TLS: TLS options (e.g. --ca) turn TLS on; nats.js also upgrades when the
      // server requires it, and checks the certificate against the URL's host name. A request nobody is
      // subscribed to fails at once (the server's no-responders status → EmptyResponseException).
      const u = new URL(url);
      const options = { servers: [`nats://${u.host}`], maxReconnectAttempts: 10, reconnectTimeWait: 200 };
      const natsTls = {};
      for (const k of ['ca', 'cert', 'key']) if (tls[k]) natsTls[k] = readFileSync(tls[k]);
      if (Object.keys(natsTls).length) options.tls = natsTls;
      this.client = ClientProxyFactory.create({ transport: Transport.NATS, options });
    } else if (isMqtt(scheme)) {
      // mqtt.js options (spec mqtt.md §7): MQTT 5 with ?protocolVersion=5 (default 3.1.1); mqtts:// checks the
      // broker's certificate against the URL's host name, trusting --ca. A request nobody is subscribed to is
      // lost and the client waits (spec mqtt.md §3): the per-call timeout in send() covers that.
      const u = new URL(url);
      this.mqttVersion = Number(u.searchParams.get('protocolVersion') ?? 4);
      const options = { url: `${u.protocol}//${u.host}`, protocolVersion: this.mqttVersion, reconnectPeriod: 200 };
      if (scheme === 'mqtts') {
        options.rejectUnauthorized = true;
        for (const k of ['ca', 'cert', 'key']) if (tls[k]) options[k] = readFileSync(tls[k]);
      }
      this.client = ClientProxyFactory.create({ transport: Transport.MQTT, options });
      keepReplySubscriptions(this.client);
    } else if (isRmq(scheme)) {
      // ClientRMQ (spec rmq.md §5): the client options that must match the server's come from the URL's query —
      // queue (declared with the same, default, options), wildcards (publish to the topic exchange named after
      // the queue, routing key = the pattern), exchange/exchangeType; the server-only ones (noAck,
      // prefetchCount, …) are ignored: the client consumes direct reply-to, which needs no-ack mode. amqps://
      // checks the broker's certificate against the URL's host name, trusting --ca. An unknown pattern gets the
      // server's no-handler reply in default mode; in wildcards mode it routes nowhere and the client waits.
      const u = new URL(url);
      const q = u.searchParams;
      const options = { urls: [`${u.protocol}//${u.host}`], queue: q.get('queue') ?? '' };
      if (q.get('wildcards') === 'true') options.wildcards = true;
      for (const k of ['exchange', 'exchangeType', 'routingKey']) if (q.has(k)) options[k] = q.get(k);
      if (q.get('durable') === 'false') options.queueOptions = { durable: false };
      // queueOptions as amqplib takes them (queueArguments: queueOptions.arguments), exchangeArguments
      for (const k of ['messageTtl', 'expires', 'maxLength', 'maxPriority'])
        if (q.has(k)) (options.queueOptions ??= {})[k] = Number(q.get(k));
      for (const k of ['deadLetterExchange', 'deadLetterRoutingKey'])
        if (q.has(k)) (options.queueOptions ??= {})[k] = q.get(k);
      if (q.has('queueArguments')) (options.queueOptions ??= {}).arguments = JSON.parse(q.get('queueArguments'));
      if (q.has('exchangeArguments')) options.exchangeArguments = JSON.parse(q.get('exchangeArguments'));
      if (scheme === 'amqps') {
        const connectionOptions = { servername: host };
        for (const k of ['ca', 'cert', 'key']) if (tls[k]) connectionOptions[k] = readFileSync(tls[k]);
        options.socketOptions = { connectionOptions };
      }
      this.client = ClientProxyFactory.create({ transport: Transport.RMQ, options });
    } else if (isKafka(scheme)) {
      // ClientKafka (spec kafka.md §9): reply topics declared before connect; a request nobody handles gets no
      // reply and the client waits (there is no timeout of Nest's own: the per-call timeout in send()).
      this.client = ClientProxyFactory.create({ transport: Transport.KAFKA, options: kafkaClientOptions(brokers) });
      for (const route of KAFKA_ROUTES) this.client.subscribeToResponseOf(route);
    } else {
      this.client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host, port, tlsOptions } });
    }
    // A TLS handshake failure is only logged by ClientTCP; pending requests then fail with a bare
    // 'Connection closed'. Keep the socket's own error so failures can say what went wrong. (ClientRedis
    // calls the listener with 'pub'/'sub' first, then the error.)
    this.socketError = null;
    // (ClientKafka.on() throws: "Method is not supported for Kafka client")
    if (!isKafka(scheme)) this.client.on('error', (...a) => (this.socketError = a.find((x) => x instanceof Error) ?? a[0]));
  }

  // headers (NATS; MQTT 5): [[name, value], ...], sent as NATS message headers through a NatsRecord, or as
  // MQTT 5 user properties through an MqttRecord (a repeated name becomes an array: mqtt.js sends one
  // property per value, in order).
  async send(pattern, data, { timeoutMs = DEFAULT_TIMEOUT_MS, headers, key } = {}) {
    const values = [];
    if ((headers || key !== undefined) && isKafka(this.scheme)) {
      // a message-shaped object: Nest's serializer sends it as the record (key, value, headers)
      const record = { value: data, headers: {} };
      for (const [k, v] of headers ?? []) record.headers[k] = v;
      if (key !== undefined) record.key = key;
      data = record;
    } else if (key !== undefined) {
      throw new Error(`a record key is only supported on Kafka, not on ${this.scheme}`);
    } else if (headers && isMqtt(this.scheme) && this.mqttVersion === 5) {
      const userProperties = {};
      for (const [k, v] of headers) userProperties[k] = k in userProperties ? [].concat(userProperties[k], v) : v;
      data = new MqttRecordBuilder(data).setProperties({ userProperties }).build();
    } else if (headers && isRmq(this.scheme)) {
      const table = {};
      for (const [k, v] of headers) {
        if (k in table) throw new Error(`an AMQP headers table holds one value per name (${k})`);
        table[k] = v;
      }
      data = new RmqRecordBuilder(data).setOptions({ headers: table }).build();
    } else if (headers) {
      if (!isNats(this.scheme)) throw new Error(`headers are not supported on ${this.scheme}`);
      data = new NatsRecordBuilder(data).setHeaders(await natsHeadersOf(headers)).build();
    }
    try {
      // Nest has no request timeout of its own: callers add rxjs timeout() (it drops local state only).
      await lastValueFrom(
        this.client.send(pattern, data).pipe(
          tap((v) => values.push(v)),
          timeout(timeoutMs),
          toArray(),
        ),
      );
      return { values };
    } catch (e) {
      if (e instanceof TimeoutError) return { values, failure: { kind: 'timeout', message: e.message } };
      // Error replies arrive as the server's `err` value verbatim (object or string, not an Error);
      // Error instances are local: connection refused/closed, TLS failures.
      if (e instanceof Error) {
        const cause = this.socketError && this.socketError !== e ? ` (socket error: ${describe(this.socketError)})` : '';
        return { values, failure: { kind: 'other', message: `${describe(e)}${cause}` } };
      }
      return { values, error: e };
    }
  }

  async emit(pattern, data) {
    // emit() is hot; its Observable completes once the frame was handed to the socket (Redis: once the
    // PUBLISH was answered; RabbitMQ: once the broker confirmed the publish).
    await lastValueFrom(this.client.emit(pattern, data), { defaultValue: undefined });
  }

  async close() {
    await this.client.close();
  }
}

// ClientMqtt counts the calls per reply topic and UNSUBSCRIBEs when the count drops to 0. With concurrent
// first requests on a route each waits for its own SUBACK, and a reply that arrives in between drops the
// count to 0: the UNSUBSCRIBE then reaches the broker after the others' SUBSCRIBEs, and their replies are lost
// (spec mqtt.md §3, "observed flaw", about 1 run in 5 of the concurrent `sleep` case). That is a flaw of the
// Nest client, not of the server under test, so this driver keeps every reply topic subscribed for its
// lifetime: the count is still kept, only the UNSUBSCRIBE is left out (a later call SUBSCRIBEs again, which
// the broker takes as a no-op).
function keepReplySubscriptions(client) {
  client.unsubscribeFromChannel = (channel) => {
    client.subscriptionsCount.set(channel, (client.subscriptionsCount.get(channel) ?? 1) - 1);
  };
}

export class CliDriver {
  kind = 'cli';

  // Linux limits one argv string to 128 KiB (MAX_ARG_STRLEN): bigger data goes on standard input as `@-`.
  static maxArgBytes = 64 * 1024;

  constructor(url, tls = {}, bin = process.env.NESTC_BIN) {
    if (!bin) throw new Error('CliDriver needs the nestc binary: set NESTC_BIN');
    this.bin = bin;
    this.url = url;
    this.scheme = parseUrl(url).scheme;
    // The same flags for every scheme: for tls://, rediss://, mqtts:// and amqps:// --ca is the CA trusted for the server's
    // (broker's) certificate, --cert/--key the client certificate.
    this.tlsArgs = [];
    for (const k of ['ca', 'cert', 'key']) if (tls[k]) this.tlsArgs.push(`--${k}`, tls[k]);
  }

  // <pattern>: JSON object/number text, otherwise the plain string (DESIGN.md §5).
  static patternArg(p) {
    return typeof p === 'string' ? p : JSON.stringify(p);
  }

  // At most this many nestc processes at once: the concurrent-request cases would otherwise start
  // that many processes (each with its own TLS handshake) on a 2-core machine, and under the sanitizers the
  // machine, not nestc, becomes the bottleneck.
  // Under a tool (NESTC_WRAP: valgrind, CPU-bound) fewer at once: the same total work, but each process
  // finishes its TLS handshake and request well within its timeout.
  static maxProcesses = process.env.NESTC_WRAP ? 4 : 16;
  static running = 0;
  static waiting = [];

  // data: the JSON text as the [data] argument, or as `@-` with the text on standard input when it is large.
  static dataArgs(data) {
    const text = JSON.stringify(data);
    return Buffer.byteLength(text) > CliDriver.maxArgBytes ? { arg: '@-', stdin: text } : { arg: text };
  }

  async run(args, killAfterMs, stdin) {
    while (CliDriver.running >= CliDriver.maxProcesses) await new Promise((r) => CliDriver.waiting.push(r));
    CliDriver.running++;
    try {
      return await this.runNow(args, killAfterMs, stdin);
    } finally {
      CliDriver.running--;
      CliDriver.waiting.shift()?.();
    }
  }

  runNow(args, killAfterMs, stdin) {
    return new Promise((resolve, reject) => {
      // NESTC_WRAP: run the CLI under a tool, e.g. valgrind (its error exit code fails the case)
      const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
      const cmd = [...wrap, this.bin, ...args];
      const child = spawn(cmd[0], cmd.slice(1), { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      if (stdin !== undefined) child.stdin.on('error', () => {}).end(stdin);
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (s) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s) => (err += s));
      // Safety net only: the CLI enforces --timeout itself.
      const guard = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      child.on('error', (e) => (clearTimeout(guard), reject(e)));
      child.on('close', (code, signal) => (clearTimeout(guard), resolve({ code, signal, out, err })));
    });
  }

  // headers (NATS, MQTT 5, RabbitMQ): [[name, value], ...] → `--header name=value` each, in order (DESIGN.md §5, §5b).
  async send(pattern, data, { timeoutMs = DEFAULT_TIMEOUT_MS, headers, key } = {}) {
    if (key !== undefined) throw new Error('nestc send has no record-key flag (Kafka key cases are Nest-driver only)');
    const d = CliDriver.dataArgs(data);
    const args = ['send', this.url, CliDriver.patternArg(pattern), d.arg];
    args.push('--timeout', String(timeoutMs), ...this.tlsArgs);
    for (const [k, v] of headers ?? []) args.push('--header', `${k}=${v}`);
    const { code, signal, out, err } = await this.run(args, timeoutMs + scaled(10000), d.stdin);
    const values = out.split('\n').filter((l) => l.trim() !== '').map((l) => parseLine(l, 'stdout'));
    if (code === 0) return { values };
    if (code === 1) return { values, error: parseErrorText(err) };
    const message = `exit ${code ?? signal}: ${err.trim()}`;
    // The contract says "a clear message" for timeouts; we recognise it by the word.
    const kind = code === 2 && /time(d)?[ -]?out/i.test(err) ? 'timeout' : 'other';
    return { values, failure: { kind, message } };
  }

  async emit(pattern, data) {
    const d = CliDriver.dataArgs(data);
    // --timeout bounds the connection too (TLS handshake included): scaled like send's, or a CLI under
    // valgrind on a loaded machine fails the default 5000 ms connect bound of an mTLS handshake
    const args = ['emit', this.url, CliDriver.patternArg(pattern), d.arg, '--timeout', String(DEFAULT_TIMEOUT_MS), ...this.tlsArgs];
    const { code, signal, err } = await this.run(args, scaled(15000), d.stdin);
    if (code !== 0) throw new Error(`nestc emit failed (exit ${code ?? signal}): ${err.trim()}`);
  }

  async close() {}
}

const describe = (e) => (e.code ? `${e.code}: ${e.message}` : e.message);

function parseLine(line, where) {
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`nestc printed a line that is not JSON on ${where}: ${line.slice(0, 200)}`);
  }
}

// The error JSON on stderr; tolerate extra log lines before it by falling back to the last line.
function parseErrorText(text) {
  const t = text.trim();
  try {
    return JSON.parse(t);
  } catch {
    return parseLine(t.split('\n').pop(), 'stderr');
  }
}

export function makeDriver(kind, url, tls) {
  if (kind === 'nest') return new NestDriver(url, tls);
  if (kind === 'cli') return new CliDriver(url, tls);
  throw new Error(`unknown driver ${kind} (nest|cli)`);
}
