// The NestJS implementation of the conformance service (DESIGN.md §4), served over TCP, TLS or Redis.
// It is the reference the nestc clients are tested against, and the suite is validated against it.
//
//   node nest-server.mjs --port P [--cert FILE --key FILE [--ca FILE]]
//   node nest-server.mjs --url redis://HOST:PORT|rediss://HOST:PORT [--ca FILE] [--wildcards]
//
// TCP: --cert/--key enable TLS; --ca additionally requires client certificates signed by that CA.
// Redis: the server is a client of the broker; with rediss:// --ca is the CA it trusts for the broker's
// certificate. --wildcards (or ?wildcards=true on the URL) makes Nest PSUBSCRIBE, so handler patterns are globs.
// Prints "READY <port or url>" on stdout once listening (Redis: once subscribed); exits 0 on SIGTERM/SIGINT
// after app.close().
//
// Plain ESM, no TypeScript: decorators are applied as functions. Nest 12 calls a handler that has no
// parameter decorators with the payload ONLY (its default call metadata is just @Payload() at index 0),
// so handlers that need the context get @Payload() and @Ctx() applied explicitly (see below).
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException, Transport } from '@nestjs/microservices';
// Nest's own pattern → route function, so `context`/`events` report exactly the route Nest matched.
import { transformPatternToRoute } from '@nestjs/microservices/utils/index.js';
import { Observable, from } from 'rxjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    url: { type: 'string' },
    wildcards: { type: 'boolean', default: false },
  },
});
if (!args.port === !args.url) {
  console.error('usage: node nest-server.mjs --port P [--cert F --key F [--ca F]]');
  console.error('       node nest-server.mjs --url redis://H:P|rediss://H:P [--ca F] [--wildcards]');
  process.exit(2);
}
const redis = args.url ? new URL(args.url) : null;
if (redis && !['redis:', 'rediss:'].includes(redis.protocol)) {
  console.error(`nest-server.mjs: unsupported URL ${args.url} (redis:// or rediss://)`);
  process.exit(2);
}
const wildcards = Boolean(args.wildcards || redis?.searchParams.get('wildcards') === 'true');
const tls = Boolean(args.cert && args.key);
// The `transport` reported by `context`: the URL scheme name (DESIGN.md §4), as tcp/tls: redis or rediss.
const transportName = redis ? redis.protocol.replace(/:$/, '') : tls ? 'tls' : 'tcp';

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

// The route (handler pattern) a message matched, from its context; `routes` are the routes the handler was
// registered under.
//  * TCP: the received pattern, normalised (see routeOf).
//  * Redis: RedisContext has only getChannel() = the CONCRETE channel the message was published on. Nest
//    dispatches on the subscribed name: without wildcards that is the channel itself; with wildcards it is the
//    PSUBSCRIBE glob that matched (ServerRedis.handleMessage looks the handler up by the glob, e.g.
//    'sensors.*', and replies on '<concrete channel>.reply', e.g. 'sensors.kitchen.reply'). Nest does not
//    expose that glob to the handler, so we find it among the handler's own routes: `pattern` = the route
//    string that was subscribed to and matched, `channel` = the concrete channel.
function matchedRoute(ctx, routes) {
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

  events(data) {
    const e = eventLog.get(routeOf(typeof data === 'string' ? data : JSON.stringify(data)));
    return e ? { count: e.count, payloads: e.payloads } : { count: 0, payloads: [] };
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

function contextReply(ctx, routes) {
  const r = { transport: transportName, pattern: matchedRoute(ctx, routes) };
  if (redis) r.channel = ctx.getChannel();
  return r;
}

// Every handler under {cmd:'<name>'} and '<name>' (except 'sensors.*': a string only). The decorators take an
// array of patterns (Nest does [].concat(metadata)); applying a decorator twice would overwrite, not add.
// routesOf[method] = the routes the method is registered under.
const routesOf = {};
const both = (name) => [{ cmd: name }, name];
const decorate = (decorator, method, patterns) => {
  const proto = Conformance.prototype;
  decorator(patterns)(proto, method, Object.getOwnPropertyDescriptor(proto, method));
  routesOf[method] = patterns.map((p) => transformPatternToRoute(p));
};
for (const name of ['sum', 'asyncSum', 'streamSum', 'streaming', 'exception', 'echo', 'sleep', 'context', 'events']) {
  decorate(MessagePattern, name, both(name));
}
decorate(MessagePattern, 'sensors', ['sensors.*']);
// (data, ctx) for the handlers that read the matched route from the context.
for (const method of ['context', 'sensors', 'notificationFirst', 'notificationSecond', 'userCreated']) {
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

const app = await NestFactory.createMicroservice(AppModule, {
  transport: redis ? Transport.REDIS : Transport.TCP,
  options: redis ? redisOptions() : { host: args.host, port: Number(args.port), tlsOptions: tlsOptions() },
  logger: ['error', 'warn'],
});
await app.listen();
if (redis) {
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
