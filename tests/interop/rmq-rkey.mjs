// rmq-rkey.mjs --driver nest|cli --url amqp://H:P --id ID — the routing key of a client with wildcards (spec
// rmq.md §2.2): the pattern string as it is, and for any other pattern JSON.stringify(pattern) as the caller
// wrote it (keys in the caller's order, not sorted as the route is). An amqplib queue bound with '#' to the
// client's topic exchange sees each event's routing key. nest (a NestJS ClientRMQ) proves the test.
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { makeDriver } from './drivers.mjs';
import { scaled } from './timing.mjs';

const { values: args } = parseArgs({
  options: { driver: { type: 'string', default: 'nest' }, url: { type: 'string' }, id: { type: 'string' } },
});
if (!args.url || !args.id) {
  console.error('usage: node rmq-rkey.mjs --driver nest|cli --url amqp://H:P --id ID');
  process.exit(2);
}
const base = args.url.split('?')[0];
const exchange = `interop-rkey-${args.driver}-${args.id}`;
// what NestJS's client declares with wildcards: the exchange, topic, durable
const conn = await amqp.connect(base);
const ch = await conn.createChannel();
await ch.assertExchange(exchange, 'topic', { durable: true });
const { queue } = await ch.assertQueue('', { exclusive: true });
await ch.bindQueue(queue, exchange, '#');
const keys = [];
await ch.consume(queue, (m) => keys.push(m.fields.routingKey), { noAck: true });

const patterns = ['sensors.kitchen', { b: 1, a: 2 }, { cmd: 'sum', role: { z: true, y: [1, 'é'] } }, 7];
const want = patterns.map((p) => (typeof p === 'string' ? p : JSON.stringify(p)));
const client = makeDriver(args.driver, `${base}?queue=interop-rkey-${args.id}&wildcards=true&exchange=${exchange}`, {});
for (const p of patterns) await client.emit(p, { n: 1 });
const deadline = Date.now() + scaled(10000);
while (keys.length < want.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
assert.deepEqual(keys, want, 'routing keys as NestJS publishes them');
await client.close();
await ch.deleteExchange(exchange);
await conn.close();
console.log(`rmq-rkey: ${keys.length} routing keys as JSON.stringify(pattern) (${args.driver})`);
