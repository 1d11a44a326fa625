// The benchmark service written with NestJS's own TCP, Redis, NATS, MQTT, RabbitMQ or Kafka transport: the
// reference nestc is measured against. The transport and its options come from nest-transport.mjs (shared with
// nest-client.mjs).
//
//   node nest-server.mjs --port P                  (P 0 = any free port)
//   node nest-server.mjs --url redis://HOST:PORT   (the same service over NestJS's Redis transport)
//   node nest-server.mjs --url nats://HOST:PORT    (the same service over NestJS's NATS transport)
//   node nest-server.mjs --url mqtt://HOST:PORT[?qos=1]  (over NestJS's MQTT transport; qos: subscribeOptions.qos)
//   node nest-server.mjs --url amqp://HOST:PORT?queue=Q[&noAck=false]  (over NestJS's RMQ transport)
//   node nest-server.mjs --url kafka://H:P[,H:P…] --topic-prefix T  (over NestJS's Kafka transport, KafkaJS; the
//                        handlers under the topics Tsum, Techo, Ttick, Tticks)
//
// Over TCP it prints "listening on port N" once it accepts connections. Over Redis it prints
// "connected to URL" after app.listen() has resolved (both ioredis connections ready) and Redis reports a
// subscriber on every handler's channel (PUBSUB NUMSUB, asked on the server's own publishing connection):
// listen() resolves before the SUBSCRIBE commands are confirmed, and a request published before that is lost.
// Over NATS the same line follows app.listen() and a flush() of the server's connection: nats.js sends the
// SUBs before the flush's PING, and nats-server handles a connection's commands in order, so its PONG
// confirms every subscription. Over MQTT the same line follows app.listen() and the SUBACK of every handler's
// SUBSCRIBE: listen() resolves on the CONNACK, and mqtt.js sends the SUBSCRIBEs queued before it afterwards, one
// at a time. Over RabbitMQ the same line follows app.listen() and the queue counting a consumer: listen() resolves
// once basic.consume is sent, not confirmed (the line is printed only while no other server consumes the queue:
// the harness stops one server before starting the next). With noAck=false every handler acknowledges its
// message by hand, as NestJS users do (`ctx.getChannelRef().ack(ctx.getMessage())`). Over Kafka the line follows
// app.listen(), which resolves once the consumer group is joined (the mock cluster's first join takes 3 s).
// Exits 0 on SIGTERM/SIGINT after app.close().
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
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { parseTarget, SCHEMES, serverTransport } from './nest-transport.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    url: { type: 'string' },
    'topic-prefix': { type: 'string' },
  },
});
const target = parseTarget(args);
if (!target) {
  console.error(`nest-server.mjs: unsupported URL ${args.url} (${SCHEMES})`);
  process.exit(2);
}
const { kind } = target;
const rmqAck = target.rmqAck;
const prefix = args['topic-prefix'];
if (kind === 'kafka' && !prefix) {
  console.error('nest-server.mjs: kafka:// needs --topic-prefix (a topic cannot be named {"cmd":"sum"})');
  process.exit(2);
}

let ticks = 0;

// With noAck=false (RabbitMQ) a NestJS handler acknowledges its message itself; ctx is then the RmqContext.
const ack = rmqAck ? (ctx) => ctx.getChannelRef().ack(ctx.getMessage()) : () => {};

class Bench {
  sum(data, ctx) {
    ack(ctx);
    return data.reduce((a, b) => a + b, 0);
  }

  echo(data, ctx) {
    ack(ctx);
    return data;
  }

  tick(data, ctx) {
    ack(ctx);
    ticks++;
  }

  ticks(data, ctx) {
    ack(ctx);
    return ticks;
  }
}

const proto = Bench.prototype;
const decorate = (decorator, method, pattern) =>
  decorator(pattern)(proto, method, Object.getOwnPropertyDescriptor(proto, method));
// Kafka: string routes only (topics), each server's own (--topic-prefix T: Tsum, Techo, Ttick, Tticks).
const route = (name) => (kind === 'kafka' ? `${prefix}${name}` : { cmd: name });
decorate(MessagePattern, 'sum', route('sum'));
decorate(MessagePattern, 'echo', route('echo'));
decorate(EventPattern, 'tick', route('tick'));
decorate(MessagePattern, 'ticks', route('ticks'));
// @Payload() on the handlers that read the data, as the NestJS documentation writes them.
Payload()(proto, 'sum', 0);
Payload()(proto, 'echo', 0);
// @Ctx() only where a handler needs its context: with noAck=false over RabbitMQ, to acknowledge.
if (rmqAck) for (const m of ['sum', 'echo', 'tick', 'ticks']) Ctx()(proto, m, 1);
Controller()(Bench);

class AppModule {}
Module({ controllers: [Bench] })(AppModule);

const app = await NestFactory.createMicroservice(AppModule, {
  ...serverTransport(target),
  logger: ['error', 'warn'],
});
await app.listen();
if (kind === 'mqtt') {
  // mqtt.js keeps a SUBSCRIBE in client.outgoing until its SUBACK (and the ones queued before the CONNACK in
  // client.queue until they are written): both empty means the broker confirmed every subscription.
  const client = app.unwrap();
  for (let i = 0; client.queue.length || Object.values(client.outgoing).some((o) => o.cmd === 'subscribe'); i++) {
    if (i === 500) {
      console.error('nest-server.mjs: the subscriptions were not confirmed within 5 s');
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  process.stdout.write(`connected to ${args.url}\n`);
} else if (kind === 'rmq') {
  // The queue's consumer count, asked on a connection of our own (amqplib, NestJS's own dependency): 1 once the
  // broker has confirmed the server's basic.consume.
  const amqplib = (await import('amqplib')).default;
  const conn = await amqplib.connect(`amqp://${target.host}:${target.port}`);
  const ch = await conn.createChannel();
  for (let i = 0; ; i++) {
    const { consumerCount } = await ch.checkQueue(target.queue);
    if (consumerCount > 0) break;
    if (i === 500) {
      console.error('nest-server.mjs: the consumer was not confirmed within 5 s');
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await conn.close();
  process.stdout.write(`connected to ${args.url}\n`);
} else if (kind === 'nats') {
  await app.unwrap().flush();
  process.stdout.write(`connected to ${args.url}\n`);
} else if (kind === 'redis') {
  const [pub] = app.unwrap();
  const channels = ['{"cmd":"sum"}', '{"cmd":"echo"}', '{"cmd":"tick"}', '{"cmd":"ticks"}'];
  for (let i = 0; ; i++) {
    const counts = await pub.call('PUBSUB', 'NUMSUB', ...channels); // [channel, n, channel, n, ...]
    if (counts.filter((_, k) => k % 2).every((n) => Number(n) > 0)) break;
    if (i === 500) {
      console.error('nest-server.mjs: the subscriptions were not confirmed within 5 s');
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  process.stdout.write(`connected to ${args.url}\n`);
} else if (kind === 'kafka') {
  // listen() resolves after consumer.run(), which KafkaJS returns from once the group is joined and synced: the
  // server has its partitions and reads them from the beginning (serverTransport), so nothing produced from now
  // on is skipped.
  process.stdout.write(`connected to ${args.url}\n`);
} else {
  process.stdout.write(`listening on port ${app.unwrap().address().port}\n`);
}

let closing = false;
// Closing a RabbitMQ server rejects the replies amqp-connection-manager still holds (NestJS does not await its
// publishes): expected at shutdown, not a failure.
process.on('unhandledRejection', (err) => {
  if (!closing) throw err;
});
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
