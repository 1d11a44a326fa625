// A poison record sent by a NestJS client to a nestc server, dead-lettered after maxAttempts, read back by a
// KafkaJS consumer.
//
//   node kafka-dead-letter.mjs --server PATH      (under with-kafka.sh: KAFKA_URL, KAFKA_BROKERS)
//
// --server: the unit test binary test_kafka_faults, started here as `PATH --poison-server URL GROUP POISON
// AFTER DEAD MAX` (under $NESTC_WRAP if set): a nestc Kafka server whose POISON event handler always fails
// (nc_event_nack with requeue) and whose AFTER handler takes everything, with maxAttempts=MAX and
// deadLetterTopic=DEAD. It prints "ready", then one line per delivery: "poison <delivery count> <key>",
// "after <data>"; it stops when its standard input ends.
//
// 1. A KafkaJS consumer subscribes to DEAD (its 3 s group join overlaps the server's).
// 2. A NestJS ClientKafka (producerOnlyMode) emits POISON as a message-shaped object {key, value, headers}.
// 3. The server sees it exactly MAX times (delivery counts 1..MAX), then the record is on DEAD with the
//    same key, value and headers (the KafkaJS consumer reads it, and Nest's own decoding of the value gives
//    the object emitted).
// 4. An AFTER event emitted next is handled: later records keep flowing; and POISON is not delivered again.
// Exits 0 when all of that held, 1 otherwise.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { Kafka, logLevel } from 'kafkajs';
import { lastValueFrom } from 'rxjs';
import { FACTOR } from './timing.mjs';

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
Logger.overrideLogger(['error', 'warn']);
const { values: args } = parseArgs({ options: { server: { type: 'string' } } });
const url = process.env.KAFKA_URL;
const brokers = process.env.KAFKA_BROKERS?.split(',');
if (!args.server || !url || !brokers) {
  console.error('usage: KAFKA_URL=kafka://… KAFKA_BROKERS=H:P,… node kafka-dead-letter.mjs --server PATH');
  process.exit(2);
}
const MAX = 3;
const tag = `${process.pid}-${Date.now()}`;
const POISON = `dl.poison.${tag}`;
const AFTER = `dl.after.${tag}`;
const DEAD = `dl.dead.${tag}`;
const value = { order: 7, note: 'héllo' };
const headers = { 'x-trace': 't-7', 'x-tenant': 'acme' };
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};

// The server and what it printed.
const lines = [];
const waiters = [];
const wrap = process.env.NESTC_WRAP ? process.env.NESTC_WRAP.split(/\s+/).filter(Boolean) : [];
const argv = [...wrap, args.server, '--poison-server', url, `dl-${tag}`, POISON, AFTER, DEAD, String(MAX)];
const server = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
const exited = new Promise((resolve) => server.on('exit', (code, sig) => resolve(code ?? sig)));
createInterface({ input: server.stdout }).on('line', (l) => {
  lines.push(l);
  for (const w of [...waiters]) w();
});
const waitFor = (pred, what, ms) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; server said: ${lines.join(' | ')}`)), ms * FACTOR);
    const w = () => {
      if (!pred()) return;
      clearTimeout(t);
      waiters.splice(waiters.indexOf(w), 1);
      resolve();
    };
    waiters.push(w);
    w();
  });
const poisons = () => lines.filter((l) => l.startsWith('poison '));

// 1. the dead-letter reader
const kafka = new Kafka({ brokers, clientId: 'dl-reader', logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 } });
const consumer = kafka.consumer({ groupId: `dl-reader-${tag}`, sessionTimeout: 6000, rebalanceTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 100 });
const dead = [];
let client;
try {
  await consumer.connect();
  await consumer.subscribe({ topic: DEAD, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void dead.push(message) });
  await waitFor(() => lines.includes('ready'), 'the nestc server', 30000);
  console.log(`server ready after ${elapsed()}`);

  // 2. the NestJS client emits the poison record
  client = ClientProxyFactory.create({
    transport: Transport.KAFKA,
    options: { client: { brokers, clientId: 'dl-nest', retry: { initialRetryTime: 100, maxRetryTime: 1000 } }, producerOnlyMode: true },
  });
  await client.connect();
  await lastValueFrom(client.emit(POISON, { key: 'poison-7', value, headers }));

  // 3. exactly MAX deliveries, then the record on DEAD
  await waitFor(() => poisons().length >= MAX, `${MAX} deliveries`, 20000);
  const deadline = Date.now() + 20000 * FACTOR;
  while (!dead.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  console.log(`dead letter read after ${elapsed()}`);
  check(
    JSON.stringify(poisons().slice(0, MAX)) === JSON.stringify([1, 2, 3].map((n) => `poison ${n} poison-7`)),
    `${MAX} deliveries, counts 1..${MAX}, key kept: ${poisons().join(', ')}`,
  );
  check(dead.length === 1, `one record on the dead-letter topic (${dead.length})`);
  if (dead.length) {
    const m = dead[0];
    check(m.key?.toString() === 'poison-7', `its key: ${m.key}`);
    check(JSON.stringify(JSON.parse(m.value.toString())) === JSON.stringify(value), `its value: ${m.value}`);
    const got = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, v?.toString()]));
    check(
      Object.entries(headers).every(([k, v]) => got[k] === v),
      `its headers: ${JSON.stringify(got)}`,
    );
  }

  // 4. later records keep flowing; the poison is not delivered again
  await lastValueFrom(client.emit(AFTER, 'after-1'));
  await waitFor(() => lines.includes('after after-1'), 'the next record', 20000);
  check(true, 'a later record handled');
  await new Promise((r) => setTimeout(r, 300));
  check(poisons().length === MAX, `no delivery past the dead letter (${poisons().length})`);
} catch (e) {
  check(false, e.message);
} finally {
  await client?.close().catch(() => {});
  await consumer.disconnect().catch(() => {});
  server.stdin.end();
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10000 * FACTOR))]);
  if (code === 'timeout') server.kill('SIGKILL');
  check(code === 0, `the server stopped cleanly (exit ${code})`);
}
console.log(`${failed ? 'FAILED' : 'passed'} in ${elapsed()}`);
process.exit(failed ? 1 : 0);
