// The NestJS implementation of the conformance service (DESIGN.md §4), served over TCP or TLS.
// It is the reference the nestc clients are tested against, and the suite is validated against it.
//
//   node nest-server.mjs --port P [--cert FILE --key FILE [--ca FILE]]
//
// --cert/--key enable TLS; --ca additionally requires client certificates signed by that CA.
// Prints "READY <port>" on stdout once listening; exits 0 on SIGTERM/SIGINT after app.close().
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
  },
});
if (!args.port) {
  console.error('usage: node nest-server.mjs --port P [--cert F --key F [--ca F]]');
  process.exit(2);
}
const tls = Boolean(args.cert && args.key);

// The route a request/event matched: the server takes ctx.getPattern() (the received pattern as text,
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

  context(data, ctx) {
    return { transport: tls ? 'tls' : 'tcp', pattern: routeOf(ctx.getPattern()) };
  }

  events(data) {
    const e = eventLog.get(routeOf(typeof data === 'string' ? data : JSON.stringify(data)));
    return e ? { count: e.count, payloads: e.payloads } : { count: 0, payloads: [] };
  }

  // `notification` has two handlers; both count, only the first records the payload.
  notificationFirst(data, ctx) {
    const e = eventEntry(routeOf(ctx.getPattern()));
    e.count++;
    e.payloads.push(data);
  }

  notificationSecond(data, ctx) {
    eventEntry(routeOf(ctx.getPattern())).count++;
  }

  userCreated(data, ctx) {
    const e = eventEntry(routeOf(ctx.getPattern()));
    e.count++;
    e.payloads.push(data);
  }
}

// Every handler under {cmd:'<name>'} and '<name>'. The decorators take an array of patterns
// (Nest does [].concat(metadata)); applying a decorator twice would overwrite, not add.
const both = (name) => [{ cmd: name }, name];
const decorate = (decorator, method, pattern) => {
  const proto = Conformance.prototype;
  decorator(both(pattern))(proto, method, Object.getOwnPropertyDescriptor(proto, method));
};
for (const name of ['sum', 'asyncSum', 'streamSum', 'streaming', 'exception', 'echo', 'sleep', 'context', 'events']) {
  decorate(MessagePattern, name, name);
}
// (data, ctx) for the handlers that read the matched route from the context.
for (const method of ['context', 'notificationFirst', 'notificationSecond', 'userCreated']) {
  Payload()(Conformance.prototype, method, 0);
  Ctx()(Conformance.prototype, method, 1);
}
decorate(EventPattern, 'notificationFirst', 'notification');
decorate(EventPattern, 'notificationSecond', 'notification');
decorate(EventPattern, 'userCreated', 'user_created');
Controller()(Conformance);

class AppModule {}
Module({ controllers: [Conformance] })(AppModule);

function tlsOptions() {
  if (!tls) return undefined;
  const o = { cert: readFileSync(args.cert), key: readFileSync(args.key) };
  if (args.ca) Object.assign(o, { ca: readFileSync(args.ca), requestCert: true, rejectUnauthorized: true });
  return o;
}

const app = await NestFactory.createMicroservice(AppModule, {
  transport: Transport.TCP,
  options: { host: args.host, port: Number(args.port), tlsOptions: tlsOptions() },
  logger: ['error', 'warn'],
});
await app.listen();
const addr = app.unwrap().address();
process.stdout.write(`READY ${addr.port}\n`);

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
