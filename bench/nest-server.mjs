// The benchmark service written with NestJS's own TCP transport: the reference nestc is measured against.
//
//   node nest-server.mjs --port P      (P 0 = any free port)
//
// Prints "listening on port N" once it accepts connections; exits 0 on SIGTERM/SIGINT after app.close().
//
//   {cmd:'sum'}    array of numbers → their sum
//   {cmd:'echo'}   anything → the same value
//   {cmd:'tick'}   event: increments a counter
//   {cmd:'ticks'}  → the counter
//
// Plain ESM, no TypeScript: decorators are applied as functions, as a compiled Nest application does.
// The handlers are what a NestJS user would write; nothing is tuned for the benchmark.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload, Transport } from '@nestjs/microservices';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

let ticks = 0;

class Bench {
  sum(data) {
    return data.reduce((a, b) => a + b, 0);
  }

  echo(data) {
    return data;
  }

  tick() {
    ticks++;
  }

  ticks() {
    return ticks;
  }
}

const proto = Bench.prototype;
const decorate = (decorator, method, pattern) =>
  decorator(pattern)(proto, method, Object.getOwnPropertyDescriptor(proto, method));
decorate(MessagePattern, 'sum', { cmd: 'sum' });
decorate(MessagePattern, 'echo', { cmd: 'echo' });
decorate(EventPattern, 'tick', { cmd: 'tick' });
decorate(MessagePattern, 'ticks', { cmd: 'ticks' });
// @Payload() on the handlers that read the data, as the NestJS documentation writes them.
Payload()(proto, 'sum', 0);
Payload()(proto, 'echo', 0);
Controller()(Bench);

class AppModule {}
Module({ controllers: [Bench] })(AppModule);

const app = await NestFactory.createMicroservice(AppModule, {
  transport: Transport.TCP,
  options: { host: args.host, port: Number(args.port) },
  logger: ['error', 'warn'],
});
await app.listen();
process.stdout.write(`listening on port ${app.unwrap().address().port}\n`);

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
