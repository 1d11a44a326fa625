// The NestJS implementation of the conformance service (DESIGN.md §4), served over TCP, TLS, Redis, NATS, MQTT or
// RabbitMQ.
// It is the reference the nestc clients are tested against, and the suite is validated against it.
//
//   node nest-server.mjs --port P [--cert FILE --key FILE [--ca FILE]]
//   node nest-server.mjs --url redis://HOST:PORT|rediss://HOST:PORT [--ca FILE] [--wildcards]
//   node nest-server.mjs --url nats://HOST:PORT [--ca FILE] [--queue NAME]
//   node nest-server.mjs --url mqtt://HOST:PORT[?protocolVersion=5]|mqtts://HOST:PORT[?…] [--ca FILE]
//   node nest-server.mjs --url amqp://HOST:PORT?queue=Q[&…]|amqps://HOST:PORT?queue=Q[&…] [--ca FILE]
//   node nest-server.mjs --url kafka://HOST:PORT[,HOST:PORT…]
//
// TCP: --cert/--key enable TLS; --ca additionally requires client certificates signed by that CA.
// Redis: the server is a client of the broker; with rediss:// --ca is the CA it trusts for the broker's
// certificate. --wildcards (or ?wildcards=true on the URL) makes Nest PSUBSCRIBE, so handler patterns are globs.
// NATS: one scheme for plain and TLS; --ca turns TLS on (the CA trusted for the broker's certificate; nats.js
// also upgrades by itself when the server requires TLS). --queue (or ?queue=NAME on the URL) is Nest's server
// option `queue`: every handler subscribes in that queue group. Handler patterns are NATS subjects, so
// 'sensors.*' and 'alerts.>' are wildcards there.
// MQTT (spec mqtt.md): mqtts:// is TLS, --ca the CA trusted for the broker's certificate; ?protocolVersion=5 on
// the URL speaks MQTT 5 (default 3.1.1), so user properties reach `context` as `headers`. Two more string
// handlers, 'sensors/+/temp' and 'alerts/#' (DESIGN.md §5b): MQTT filters, replying like `context`.
// RabbitMQ (spec rmq.md, DESIGN.md §5b): amqps:// is TLS, --ca the CA trusted for the broker's certificate. The
// query holds Nest's server options (see RMQ_OPTIONS below): queue (required; NestJS's default queue options, so
// the queue is durable), wildcards=true (a topic exchange named after the queue, bound with every handler
// route: 'sensors.*' is then an AMQP wildcard), noAck=false with prefetchCount=N (every delivery is settled
// exactly once, by the handler as a NestJS user must: see `settling` below; unknown patterns are nacked by Nest
// itself), exchange/exchangeType/routingKey, isGlobalPrefetchCount, noAssert, consumerTag, durable=false.
// `context` reports `channel` (the routing key the delivery arrived with: the queue name in default mode, the
// pattern in wildcards mode) and `headers` (the AMQP headers table, absent when empty).
// Kafka (spec kafka.md, DESIGN.md §5b): string routes only (a topic cannot be named '{"cmd":"sum"}'), so every
// handler is registered under its plain name alone; 'sensors.*' and 'alerts.>' are not legal topic names and are
// left out. `context` reports `channel` (the topic), `headers` (every record header as text, Nest's own
// kafka_correlationId/kafka_replyTopic/kafka_replyPartition included) and `messageKey` (the record key as text, or
// null; not `key`, which would make Nest's serializer send the reply object as a ready-made Kafka message). The
// KafkaJS settings suit the mock cluster of the tests (with-kafka.sh): see KAFKA_* below.
// Prints "READY <port or url>" on stdout once listening (Redis, NATS, MQTT: once subscribed; RabbitMQ: once
// the queue is declared and bound); exits 0 on SIGTERM/SIGINT after app.close().
//
// Plain ESM, no TypeScript: decorators are applied as functions. Nest 12 calls a handler that has no
// parameter decorators with the payload ONLY (its default call metadata is just @Payload() at index 0),
// so handlers that need the context get @Payload() and @Ctx() applied explicitly (see below).
import 'reflect-metadata';
// KafkaJS 2 warns on every producer that its default partitioner changed in 2.0 (nothing here depends on it).
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException, Transport } from '@nestjs/microservices';
// Nest's own pattern → route function, so `context`/`events` report exactly the route Nest matched.
import { transformPatternToRoute } from '@nestjs/microservices/utils/index.js';
import { Observable, finalize, from, isObservable } from 'rxjs';
import kafkajs from 'kafkajs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    url: { type: 'string' },
    wildcards: { type: 'boolean', default: false },
    queue: { type: 'string' },
    // Kafka: a group shared with other servers (kafka-group.mjs), see kafkaGroupOptions() below
    group: { type: 'string' },
  },
});
if (!args.port === !args.url) {
  console.error('usage: node nest-server.mjs --port P [--cert F --key F [--ca F]]');
  console.error('       node nest-server.mjs --url redis://H:P|rediss://H:P [--ca F] [--wildcards]');
  console.error('       node nest-server.mjs --url nats://H:P [--ca F] [--queue NAME]');
  console.error('       node nest-server.mjs --url mqtt://H:P[?protocolVersion=5]|mqtts://H:P[?…] [--ca F]');
  console.error('       node nest-server.mjs --url amqp://H:P?queue=Q[&…]|amqps://H:P?queue=Q[&…] [--ca F]');
  process.exit(2);
}
// kafka://H:P,H:P,… is no WHATWG URL (several hosts): parsed here, the URL object gets only the first broker.
const kafkaBrokers = args.url?.startsWith('kafka://') ? args.url.slice(8).split(/[/?]/)[0].split(',') : null;
const brokerUrl = args.url ? new URL(kafkaBrokers ? `kafka://${kafkaBrokers[0]}` : args.url) : null;
if (brokerUrl && !['redis:', 'rediss:', 'nats:', 'mqtt:', 'mqtts:', 'amqp:', 'amqps:', 'kafka:'].includes(brokerUrl.protocol)) {
  console.error(`nest-server.mjs: unsupported URL ${args.url} (redis://, rediss://, nats://, mqtt://, mqtts://, amqp://, amqps:// or kafka://)`);
  process.exit(2);
}
const redis = brokerUrl?.protocol.startsWith('redis') ? brokerUrl : null;
const nats = brokerUrl?.protocol === 'nats:' ? brokerUrl : null;
const mqtt = brokerUrl?.protocol.startsWith('mqtt') ? brokerUrl : null;
const rmq = brokerUrl?.protocol.startsWith('amqp') ? brokerUrl : null;
const kafka = kafkaBrokers ? brokerUrl : null;
const mqttVersion = Number(mqtt?.searchParams.get('protocolVersion') ?? 4);
const wildcards = Boolean(args.wildcards || (redis ?? rmq)?.searchParams.get('wildcards') === 'true');
const queue = args.queue ?? (nats ?? rmq)?.searchParams.get('queue') ?? undefined;
const tls = Boolean(args.cert && args.key);
// The `transport` reported by `context`: the URL scheme name (DESIGN.md §4), as tcp/tls: redis or rediss;
// nats (plain or TLS); mqtt or mqtts; amqp or amqps.
const transportName = brokerUrl ? brokerUrl.protocol.replace(/:$/, '') : tls ? 'tls' : 'tcp';

// TCP: the route a request/event matched. The server takes ctx.getPattern() (the received pattern as text,
// object patterns JSON-stringified in received key order), parses it if it is JSON, then normalises.
function routeOf(patternText) {
  let p = patternText;
  try {
    p = JSON.parse(patternText);
  } catch {
    /* plain string pattern */
  }
  return transformPatternToRoute(p);
}

// A Redis glob as a RegExp: only `*` and `?` (our handler patterns use no [sets] or escapes).
const globToRegExp = (glob) =>
  new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');

// NATS subject matching: `*` matches one token, `>` (last) one or more tokens.
function natsMatches(filter, subject) {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>' && i === f.length - 1) return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

// MQTT topic filter matching (spec mqtt.md §2): `+` one level, `#` (last) the rest, including the parent
// level itself ('alerts/#' matches 'alerts'); a `$share/<group>/` prefix is not part of the filter.
function mqttMatches(filter, topic) {
  const f = filter.replace(/^\$share\/[^/]+\//, '').split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#' && i === f.length - 1) return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

// RabbitMQ topic matching as ServerRMQ.matchRmqPattern does it: `*` one dot-separated word, `#` (last) the rest.
function rmqMatches(filter, key) {
  const f = filter.split('.');
  const k = key.split('.');
  for (let i = 0; i < f.length; i++) {
    if (!k[i] && !f[i]) continue;
    if (!k[i] && f[i] !== '#') return false;
    if (f[i] === '#') return i === f.length - 1;
    if (f[i] !== '*' && f[i] !== k[i]) return false;
  }
  return f.length === k.length;
}

// The route (handler pattern) a message matched, from its context; `routes` are the routes the handler was
// registered under.
//  * TCP: the received pattern, normalised (see routeOf).
//  * Redis: RedisContext has only getChannel() = the CONCRETE channel the message was published on. Nest
//    dispatches on the subscribed name: without wildcards that is the channel itself; with wildcards it is the
//    PSUBSCRIBE glob that matched (ServerRedis.handleMessage looks the handler up by the glob, e.g.
//    'sensors.*', and replies on '<concrete channel>.reply', e.g. 'sensors.kitchen.reply'). Nest does not
//    expose that glob to the handler, so we find it among the handler's own routes: `pattern` = the route
//    string that was subscribed to and matched, `channel` = the concrete channel.
//  * NATS: the same idea. Nest subscribes to every handler route as a subject (so 'sensors.*' and 'alerts.>'
//    are NATS wildcards) and dispatches on the subscription; NatsContext has only getSubject() = the
//    concrete subject, so `pattern` is the handler's own route that matches it.
//  * MQTT: the same again. MqttContext.getTopic() is the concrete topic; Nest dispatches to the exact route,
//    else to the first handler whose filter matches (spec mqtt.md §2).
//  * RabbitMQ: RmqContext.getPattern() is the received pattern as text; Nest looks it up normalised, then (in
//    wildcards mode) tries the wildcard routes in turn.
function matchedRoute(ctx, routes) {
  if (kafka) return ctx.getTopic(); // exact topics only (no RegExp handlers here)
  if (rmq) {
    const route = routeOf(ctx.getPattern());
    if (routes.includes(route) || !wildcards) return route;
    return routes.find((r) => rmqMatches(r, ctx.getPattern())) ?? route;
  }
  if (mqtt) {
    const topic = ctx.getTopic();
    if (routes.includes(topic)) return topic;
    return routes.find((r) => mqttMatches(r, topic)) ?? topic;
  }
  if (nats) {
    const subject = ctx.getSubject();
    if (routes.includes(subject)) return subject;
    return routes.find((r) => natsMatches(r, subject)) ?? subject;
  }
  if (!redis) return routeOf(ctx.getPattern());
  const channel = ctx.getChannel();
  if (routes.includes(channel) || !wildcards) return channel;
  return routes.find((r) => globToRegExp(r).test(channel)) ?? channel;
}

const sumOf = (xs) => xs.reduce((a, b) => a + b, 0);

// Event bookkeeping, keyed by route string ('notification', '{"cmd":"notification"}', ...).
const eventLog = new Map();
function eventEntry(route) {
  if (!eventLog.has(route)) eventLog.set(route, { count: 0, payloads: [] });
  return eventLog.get(route);
}

class Conformance {
  sum(data) {
    return sumOf(data);
  }

  // Replied later from the event loop, not inside the handler call.
  asyncSum(data) {
    return new Promise((resolve) => setImmediate(() => resolve(sumOf(data))));
  }

  // One-value stream. The value is emitted asynchronously and completion comes one loop turn later,
  // so Nest usually sends the terminal {"isDisposed":true} as a separate packet: clients must cope.
  streamSum(data) {
    return new Observable((sub) => {
      const t = setImmediate(() => {
        sub.next(sumOf(data));
        setImmediate(() => sub.complete());
      });
      return () => clearImmediate(t);
    });
  }

  // Synchronous stream: Nest puts isDisposed on the last value packet.
  streaming(data) {
    return from(data);
  }

  exception(data) {
    throw new RpcException(data);
  }

  echo(data) {
    return data;
  }

  // A timer, so other requests are not delayed.
  sleep(data) {
    return new Promise((resolve) => setTimeout(() => resolve(data), data));
  }

  // `channel` only where the transport has one (Redis: the concrete channel).
  context(data, ctx) {
    return contextReply(ctx, routesOf.context);
  }

  // 'sensors.*': replies like `context`. On TCP and on Redis without wildcards it is a literal name; with
  // Redis wildcards it is a glob, so a request on 'sensors.kitchen' gets pattern 'sensors.*' and channel
  // 'sensors.kitchen' (the reply goes to 'sensors.kitchen.reply'). Nest's server is PSUBSCRIBEd to
  // 'sensors.*', so it also receives its own reply on 'sensors.kitchen.reply'; having no `pattern`/`data`,
  // that message is taken as an EVENT for the glob (README.md 9.1) and runs this handler once more without
  // replying. A server that read the reply's `id` as "request" would reply to '….reply.reply' forever.
  sensors(data, ctx) {
    return contextReply(ctx, routesOf.sensors);
  }

  // 'alerts.>': replies like `context`. A NATS full wildcard: 'alerts.a' and 'alerts.a.b' match it (pattern
  // 'alerts.>', channel the concrete subject). Elsewhere a literal name (a Redis glob matching only itself).
  alerts(data, ctx) {
    return contextReply(ctx, routesOf.alerts);
  }

  // MQTT (DESIGN.md §5b): 'sensors/+/temp' (one level) and 'alerts/#' (the rest), reply like `context`.
  // 'alerts/#' also matches the service's own replies ('alerts/…/reply'): they have an `id` but no
  // `pattern`/`data`, so Nest takes them as events (spec README.md 9.1) and runs this once more without
  // replying; a server that answered them would loop forever.
  mqttSensors(data, ctx) {
    return contextReply(ctx, routesOf.mqttSensors);
  }

  mqttAlerts(data, ctx) {
    return contextReply(ctx, routesOf.mqttAlerts);
  }

  // RabbitMQ (extension, DESIGN.md §4): the delivery's message properties as amqplib gives them, so a client
  // sees the RmqRecord options it sent.
  properties(data, ctx) {
    return ctx.getMessage().properties;
  }

  events(data) {
    const e = eventLog.get(routeOf(typeof data === 'string' ? data : JSON.stringify(data)));
    const r = e ? { count: e.count, payloads: e.payloads } : { count: 0, payloads: [] };
    if (args.group) r.server = 'nest'; // which member of a shared group answered (kafka-group.mjs)
    return r;
  }

  // `notification` has two handlers; both count, only the first records the payload.
  notificationFirst(data, ctx) {
    const e = eventEntry(matchedRoute(ctx, routesOf.notificationFirst));
    e.count++;
    e.payloads.push(data);
  }

  notificationSecond(data, ctx) {
    eventEntry(matchedRoute(ctx, routesOf.notificationSecond)).count++;
  }

  userCreated(data, ctx) {
    const e = eventEntry(matchedRoute(ctx, routesOf.userCreated));
    e.count++;
    e.payloads.push(data);
  }
}

// NATS: `headers` = the message's headers as an object {name: value}, absent when the message had none.
// A header that occurs more than once gives its FIRST value (MsgHdrs.get), as nestc does.
function contextReply(ctx, routes) {
  const r = { transport: transportName, pattern: matchedRoute(ctx, routes) };
  if (args.group) r.server = 'nest'; // which member of a shared group answered (kafka-group.mjs)
  if (redis) r.channel = ctx.getChannel();
  if (nats) {
    r.channel = ctx.getSubject();
    const h = ctx.getHeaders();
    if (h) {
      r.headers = {};
      for (const k of h.keys()) r.headers[k] = h.get(k);
    }
  }
  // MQTT: the concrete topic; `headers` = the MQTT 5 user properties of the request (mqtt.js gives an array
  // for a name that occurs more than once: its first value, as on NATS), absent when it had none.
  if (mqtt) {
    r.channel = ctx.getTopic();
    const up = ctx.getPacket()?.properties?.userProperties;
    if (up && Object.keys(up).length) {
      r.headers = {};
      for (const [k, v] of Object.entries(up)) r.headers[k] = Array.isArray(v) ? v[0] : v;
    }
  }
  // RabbitMQ: the routing key of the delivery, and the AMQP headers table (absent when empty; byte arrays as
  // text).
  if (rmq) {
    const m = ctx.getMessage();
    r.channel = m.fields.routingKey;
    const h = m.properties.headers;
    if (h && Object.keys(h).length) {
      r.headers = {};
      for (const [k, v] of Object.entries(h)) r.headers[k] = Buffer.isBuffer(v) ? v.toString() : v;
    }
  }
  // Kafka: the topic, every record header as text, and the record key as text (or null).
  if (kafka) {
    const m = ctx.getMessage();
    r.channel = ctx.getTopic();
    const text = (v) => (v == null ? null : typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString() : JSON.stringify(v));
    const h = m.headers ?? {};
    if (Object.keys(h).length) {
      r.headers = {};
      for (const [k, v] of Object.entries(h)) r.headers[k] = text(v);
    }
    r.messageKey = text(m.key);
  }
  return r;
}

// RabbitMQ with noAck=false: Nest acknowledges nothing by itself (spec rmq.md §4.5: it only nacks unknown
// patterns), so every handler settles its delivery, as a NestJS user must: it acks once it finished (returned,
// threw, or its promise or reply stream ended). An event with two handlers is acked once (a second ack of the
// same delivery tag would make the broker close the channel).
const settling = Boolean(rmq) && rmq.searchParams.get('noAck') === 'false';
const settled = new WeakSet();
function settle(ctx) {
  const m = ctx.getMessage();
  if (settled.has(m)) return;
  settled.add(m);
  ctx.getChannelRef().ack(m);
}
function settleWhenDone(fn) {
  return function (data, ctx) {
    let result;
    try {
      result = fn.call(this, data, ctx);
    } catch (e) {
      settle(ctx);
      throw e;
    }
    if (isObservable(result)) return result.pipe(finalize(() => settle(ctx)));
    if (typeof result?.then === 'function') return result.finally(() => settle(ctx));
    settle(ctx);
    return result;
  };
}
const handlerMethods = Object.getOwnPropertyNames(Conformance.prototype).filter((m) => m !== 'constructor');
if (settling) for (const m of handlerMethods) Conformance.prototype[m] = settleWhenDone(Conformance.prototype[m]);

// Every handler under {cmd:'<name>'} and '<name>' (except 'sensors.*' and 'alerts.>': strings only). The decorators take an
// array of patterns (Nest does [].concat(metadata)); applying a decorator twice would overwrite, not add.
// routesOf[method] = the routes the method is registered under.
const routesOf = {};
const both = (name) => (kafka ? [name] : [{ cmd: name }, name]);
const decorate = (decorator, method, patterns) => {
  const proto = Conformance.prototype;
  decorator(patterns)(proto, method, Object.getOwnPropertyDescriptor(proto, method));
  routesOf[method] = patterns.map((p) => transformPatternToRoute(p));
};
for (const name of ['sum', 'asyncSum', 'streamSum', 'streaming', 'exception', 'echo', 'sleep', 'context', 'events']) {
  decorate(MessagePattern, name, both(name));
}
if (!kafka) {
  decorate(MessagePattern, 'sensors', ['sensors.*']);
  decorate(MessagePattern, 'alerts', ['alerts.>']);
}
// MQTT only: elsewhere these would be odd literal names nobody asks for (and subscriptions more to count).
if (mqtt) {
  decorate(MessagePattern, 'mqttSensors', ['sensors/+/temp']);
  decorate(MessagePattern, 'mqttAlerts', ['alerts/#']);
}
if (rmq) decorate(MessagePattern, 'properties', both('properties'));
// (data, ctx) for the handlers that read the matched route from the context (RabbitMQ: all, for settling).
const withCtx = ['context', 'sensors', 'alerts', 'mqttSensors', 'mqttAlerts'];
for (const method of rmq ? handlerMethods : [...withCtx, 'notificationFirst', 'notificationSecond', 'userCreated']) {
  Payload()(Conformance.prototype, method, 0);
  Ctx()(Conformance.prototype, method, 1);
}
decorate(EventPattern, 'notificationFirst', both('notification'));
decorate(EventPattern, 'notificationSecond', both('notification'));
decorate(EventPattern, 'userCreated', both('user_created'));
Controller()(Conformance);

class AppModule {}
Module({ controllers: [Conformance] })(AppModule);

function tlsOptions() {
  if (!tls) return undefined;
  const o = { cert: readFileSync(args.cert), key: readFileSync(args.key) };
  if (args.ca) Object.assign(o, { ca: readFileSync(args.ca), requestCert: true, rejectUnauthorized: true });
  return o;
}

// Redis: the broker connection. retryAttempts must be set or ioredis never reconnects (a broker restart
// would end the server); 50 × 200 ms rides out a restart of a few seconds.
function redisOptions() {
  const o = {
    host: redis.hostname.replace(/^\[|\]$/g, ''),
    port: Number(redis.port || 6379),
    wildcards,
    retryAttempts: 50,
    retryDelay: 200,
  };
  if (redis.protocol === 'rediss:') {
    o.tls = { servername: o.host, rejectUnauthorized: true };
    if (args.ca) o.tls.ca = readFileSync(args.ca);
  }
  return o;
}

// NATS: the broker connection (nats.js connect options, plus Nest's `queue`). The URL without its query;
// TLS when --ca is given (nats.js verifies the certificate against the URL's host name). Reconnect without
// limit, every 200 ms, so a broker restart does not end the server.
function natsOptions() {
  const o = {
    servers: [`nats://${nats.host}`],
    maxReconnectAttempts: -1,
    reconnectTimeWait: 200,
  };
  if (queue) o.queue = queue;
  if (args.ca) o.tls = { ca: readFileSync(args.ca) };
  return o;
}

// MQTT: the broker connection (mqtt.js options, spec mqtt.md §7). The URL without its query; MQTT 5 with
// ?protocolVersion=5; for mqtts:// the CA from --ca (mqtt.js checks the certificate against the URL's host
// name). Reconnect every 200 ms (mqtt.js default 1000), without limit, so a broker restart does not end it.
function mqttOptions() {
  const o = { url: `${mqtt.protocol}//${mqtt.host}`, protocolVersion: mqttVersion, reconnectPeriod: 200 };
  if (mqtt.protocol === 'mqtts:') {
    o.rejectUnauthorized = true;
    if (args.ca) o.ca = readFileSync(args.ca);
  }
  return o;
}

// RabbitMQ: Nest's server options from the URL's query (spec rmq.md §6), the broker URL without it. Unknown
// names are refused (a typo would otherwise test the defaults). amqps://: the CA from --ca (amqplib checks the
// certificate against the URL's host name). Reconnect every 200 ms (default 5 s), so a broker restart is short.
const RMQ_OPTIONS = {
  queue: String,
  wildcards: (v) => v === 'true',
  noAck: (v) => v !== 'false',
  prefetchCount: Number,
  isGlobalPrefetchCount: (v) => v === 'true',
  exchange: String,
  exchangeType: String,
  routingKey: String,
  noAssert: (v) => v === 'true',
  consumerTag: String,
  durable: (v) => v !== 'false', // → queueOptions.durable
  exchangeArguments: JSON.parse,
  // → queueOptions (amqplib's assertQueue options; queueArguments is queueOptions.arguments)
  messageTtl: Number,
  expires: Number,
  deadLetterExchange: String,
  deadLetterRoutingKey: String,
  maxLength: Number,
  maxPriority: Number,
  queueArguments: JSON.parse,
};
const RMQ_QUEUE_OPTIONS = { durable: 'durable', messageTtl: 'messageTtl', expires: 'expires',
  deadLetterExchange: 'deadLetterExchange', deadLetterRoutingKey: 'deadLetterRoutingKey', maxLength: 'maxLength',
  maxPriority: 'maxPriority', queueArguments: 'arguments' };
function rmqOptions() {
  const o = { urls: [`${rmq.protocol}//${rmq.host}`], socketOptions: { reconnectTimeInSeconds: 0.2 } };
  for (const [k, v] of rmq.searchParams) {
    if (!(k in RMQ_OPTIONS)) {
      console.error(`nest-server.mjs: unknown RabbitMQ option '${k}' (${Object.keys(RMQ_OPTIONS).join(', ')})`);
      process.exit(2);
    }
    if (k in RMQ_QUEUE_OPTIONS) (o.queueOptions ??= {})[RMQ_QUEUE_OPTIONS[k]] = RMQ_OPTIONS[k](v);
    else o[k] = RMQ_OPTIONS[k](v);
  }
  if (queue) o.queue = queue; // --queue (with-server.sh passes ?queue= that way too)
  if (wildcards) o.wildcards = true;
  if (rmq.protocol === 'amqps:') {
    o.socketOptions.connectionOptions = { servername: rmq.hostname };
    if (args.ca) o.socketOptions.connectionOptions.ca = [readFileSync(args.ca)];
  }
  return o;
}

// Kafka: KafkaJS settings for the tests' mock cluster (with-kafka.sh; docs/kafka.md "Tests and the broker").
//  * a group of its own per server process (a stale member of an earlier run would delay the join by its whole
//    session timeout), a 6 s session (KafkaJS's default 30 s is how long a rebalance may wait for a dead member),
//    heartbeats every second;
//  * maxWaitTimeInMs 100: an empty fetch returns after 100 ms instead of 5 s, which bounds the latency of the
//    first request after an idle period;
//  * fromBeginning: the group has no committed offsets, and "latest" is resolved at the first fetch, after the
//    join: a request produced in between would be skipped. Each run has a fresh cluster, so "beginning" holds only
//    this run's records;
//  * partitionsConsumedConcurrently 4 (the mock's partitions per topic): Nest awaits each request's first reply
//    value inside eachMessage, so one slow request (`sleep`) holds its partition; the other partitions go on;
//  * retries every 100 ms: topics are created by the first Metadata request that names them, and the first
//    produce or fetch may meet "leader not available" for a moment.
const KAFKA_CONSUMER = { sessionTimeout: 6000, rebalanceTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 100 };
function kafkaClientBase() {
  return {
    brokers: kafkaBrokers,
    clientId: 'nestc-conformance',
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 },
  };
}
function kafkaOptions() {
  return {
    client: kafkaClientBase(),
    consumer: { ...KAFKA_CONSUMER, groupId: `nestc-conformance-${process.pid}-${Date.now()}` },
    subscribe: { fromBeginning: true },
    run: { partitionsConsumedConcurrently: 4 },
    ...kafkaGroupOptions(),
  };
}

// --group G: the server joins the group G-server, shared with nestc servers (docs/kafka.md "Server groups with
// NestJS members"): KafkaJS's RoundRobinAssigner under librdkafka's protocol name `roundrobin` (KafkaJS's own name
// RoundRobinAssigner is one librdkafka cannot speak), and each group join logged as one line on stdout,
// `GROUP_JOIN {"memberId", "leaderId", "isLeader", "groupProtocol", "partitions"}`, through KafkaJS's logger
// (its INFO "Consumer has joined the group", which also covers the join before listen() resolves); the
// logger's errors and warnings go to stderr.
function kafkaGroupOptions() {
  if (!args.group) return {};
  const roundrobin = (config) => ({ ...kafkajs.PartitionAssigners.roundRobin(config), name: 'roundrobin' });
  const logCreator = () => ({ level, log }) => {
    const { message, ...extra } = log;
    if (message === 'Consumer has joined the group') {
      const { memberId, leaderId, isLeader, groupProtocol, memberAssignment } = extra;
      const partitions = Object.values(memberAssignment ?? {}).reduce((n, p) => n + p.length, 0);
      process.stdout.write(`GROUP_JOIN ${JSON.stringify({ memberId, leaderId, isLeader, groupProtocol, partitions })}\n`);
    } else if (level <= kafkajs.logLevel.WARN) {
      process.stderr.write(`KafkaJS ${level === kafkajs.logLevel.WARN ? 'WARN' : 'ERROR'} ${message} ${JSON.stringify(extra)}\n`);
    }
  };
  return {
    consumer: { ...KAFKA_CONSUMER, groupId: args.group, partitionAssigners: [roundrobin] },
    client: { ...kafkaClientBase(), logCreator },
  };
}

const [transport, options] = kafka
  ? [Transport.KAFKA, kafkaOptions()]
  : rmq
    ? [Transport.RMQ, rmqOptions()]
    : mqtt
      ? [Transport.MQTT, mqttOptions()]
      : nats
        ? [Transport.NATS, natsOptions()]
        : redis
          ? [Transport.REDIS, redisOptions()]
          : [Transport.TCP, { host: args.host, port: Number(args.port), tlsOptions: tlsOptions() }];
const app = await NestFactory.createMicroservice(AppModule, { transport, options, logger: ['error', 'warn'] });
await app.listen();
if (kafka) {
  // listen() resolves after consumer.run(), which KafkaJS returns from once the group is joined and synced:
  // this server has its partitions (and reads them from the beginning, see above).
  process.stdout.write(`READY ${args.url}\n`);
} else if (rmq) {
  // listen() resolves once the queue is declared (and in wildcards mode the exchange declared and bound, with
  // every handler route): a request published from now on waits in the queue even if Basic.Consume is still
  // on its way.
  process.stdout.write(`READY ${args.url}\n`);
} else if (mqtt) {
  // listen() resolves once connected, with one SUBSCRIBE per handler sent but not acknowledged. The broker
  // handles a client's packets in order, so the UNSUBACK of a topic nobody subscribed comes after their
  // SUBACKs: READY means "subscribed".
  await app.unwrap().unsubscribeAsync('nestc-interop/ready');
  process.stdout.write(`READY ${args.url}\n`);
} else if (nats) {
  // listen() resolves once the SUBs were queued on the connection. flush() sends a PING and waits for the
  // PONG, which the server answers after processing the SUBs before it: READY means "subscribed".
  await app.unwrap().flush();
  process.stdout.write(`READY ${args.url}${queue ? ` (queue ${queue})` : ''}\n`);
} else if (redis) {
  // listen() resolves once SUBSCRIBE/PSUBSCRIBE were sent, not confirmed. A PING on the subscriber
  // connection is answered after them, so READY means "subscribed".
  const [, sub] = app.unwrap();
  await sub.ping();
  process.stdout.write(`READY ${args.url}\n`);
} else {
  process.stdout.write(`READY ${app.unwrap().address().port}\n`);
}

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
