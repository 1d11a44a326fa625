// RabbitMQ fanout (spec rmq.md §2.3): servers started with exchange=E&exchangeType=fanout each declare E and
// bind their own queue to it with an empty key; a client with the same options publishes to E, so every
// bound server gets every request and event. Run under two with-server.sh, one per server (a NestJS and a
// nestc server, each on its own queue):
//
//   node rmq-fanout.mjs --driver nest|cli --fan URL?queue=A&exchange=E&exchangeType=fanout
//                       --direct URL?queue=A --direct URL?queue=B
//
// 1. One 'notification' event {id} through the fanout client; each server's `events` record, asked through
//    its own queue (a NestJS client in default mode, so only that server answers), shows the payload once
//    and count 2 (its two `notification` handlers), and nothing else (fresh servers).
// 2. Requests through the fanout client: both servers answer, the caller keeps the first reply (as a NestJS
//    client does); `context` shows the pattern as the delivery's routing key.
// Exits 0 when all of that held, 1 otherwise.
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { makeDriver } from './drivers.mjs';
import { FACTOR } from './timing.mjs';

Logger.overrideLogger(['error', 'warn']);
const { values: args } = parseArgs({
  options: {
    driver: { type: 'string', default: 'nest' },
    fan: { type: 'string' },
    direct: { type: 'string', multiple: true },
  },
});
if (!args.fan || (args.direct ?? []).length < 2) {
  console.error('usage: node rmq-fanout.mjs --driver nest|cli --fan URL --direct URL --direct URL');
  process.exit(2);
}
const fail = (msg) => {
  console.error(`rmq-fanout.mjs: ${msg}`);
  process.exit(1);
};
const fan = makeDriver(args.driver, args.fan, {});
const direct = args.direct.map((u) => makeDriver('nest', u, {}));

const id = randomUUID();
await fan.emit('notification', { id });
const deadline = Date.now() + 10000 * FACTOR;
for (const [i, d] of direct.entries()) {
  for (;;) {
    const r = await d.send('events', 'notification');
    if (r.failure || r.error) fail(`events on ${args.direct[i]}: ${JSON.stringify(r.failure ?? r.error)}`);
    const e = r.values[0];
    if (e.count >= 2) {
      if (e.count !== 2 || e.payloads.length !== 1 || e.payloads[0].id !== id)
        fail(`server ${i} recorded ${JSON.stringify(e)}, expected the payload {id:${id}} once and count 2`);
      break;
    }
    if (Date.now() > deadline) fail(`server ${i} never got the event: ${JSON.stringify(e)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
for (let n = 0; n < 5; n++) {
  const r = await fan.send('sum', [n, 1]);
  if (r.failure || r.error || r.values.length !== 1 || r.values[0] !== n + 1)
    fail(`sum [${n},1] through the fanout: ${JSON.stringify(r)}`);
}
const c = await fan.send('context', {});
if (c.failure || c.error || c.values[0]?.channel !== 'context')
  fail(`context through the fanout: ${JSON.stringify(c)} (the routing key should be the pattern)`);
await fan.close();
for (const d of direct) await d.close();
console.log(`fanout: both servers got the event, ${5 + 1} requests answered`);
process.exit(0);
