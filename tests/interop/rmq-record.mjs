// rmq-record.mjs --driver nest|cli --url amqp://H:P?queue=Q — run by with-server.sh (nest or nestc
// conformance server on the shared RabbitMQ): requests carrying message properties (NestJS RmqRecord options,
// spec rmq.md §3.4) to the service's `properties` route, which answers with the properties its handler saw
// (NestJS: ctx.getMessage().properties; nestc: the same names from the handler's context).
//   nest  a NestJS ClientRMQ sends new RmqRecordBuilder(data).setOptions({headers, priority, persistent, …})
//   cli   nestc send URL properties --opt priority=3 --opt messageId=… --header x-trace=t-1
// Then a request without them: none of those properties, delivery mode 1 (persistent false by default).
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import { RmqRecordBuilder } from '@nestjs/microservices';
import { lastValueFrom, timeout } from 'rxjs';
import { makeDriver } from './drivers.mjs';
import { scaled } from './timing.mjs';

const { values: args } = parseArgs({ options: { driver: { type: 'string', default: 'nest' }, url: { type: 'string' } } });
if (!args.url) {
  console.error('usage: node rmq-record.mjs --driver nest|cli --url amqp://H:P?queue=Q');
  process.exit(2);
}
const driver = makeDriver(args.driver, args.url, {});
const ms = scaled(10000);
// userId must be the connection's login (RabbitMQ closes the channel otherwise): guest, unless the URL says
const ownLogin = !new URL(args.url).username;

// What is sent, in amqplib's publish option names (expiration as a number: amqplib sends its text)
const sent = {
  priority: 3,
  persistent: true,
  messageId: 'm-1',
  expiration: 60000,
  timestamp: 1700000000,
  type: 'rec-type',
  contentType: 'application/json',
  contentEncoding: 'identity',
  appId: 'rec-app',
  ...(ownLogin ? { userId: 'guest' } : {}),
};
// What the handler must see
const seen = { ...sent, expiration: '60000', deliveryMode: 2, headers: { 'x-trace': 't-1' } };
delete seen.persistent;

async function ask(withProps) {
  if (driver.kind === 'cli') {
    const a = ['send', args.url, 'properties', '1', '--timeout', String(ms)];
    if (withProps) {
      for (const [k, v] of Object.entries(sent)) a.push('--opt', `${k}=${v}`);
      a.push('--header', 'x-trace=t-1');
    }
    const { code, out, err } = await driver.run(a, ms + scaled(10000));
    assert.equal(code, 0, `nestc send failed (exit ${code}): ${err.trim()}`);
    return JSON.parse(out.trim().split('\n').pop());
  }
  const data = withProps
    ? new RmqRecordBuilder(1).setOptions({ ...sent, headers: { 'x-trace': 't-1' } }).build()
    : 1;
  return lastValueFrom(driver.client.send('properties', data).pipe(timeout(ms)));
}

try {
  const got = await ask(true);
  for (const [k, v] of Object.entries(seen)) assert.deepEqual(got[k], v, `property ${k}: ${JSON.stringify(got)}`);
  // correlationId and replyTo stay the client's own
  assert.equal(typeof got.correlationId, 'string');
  assert.match(got.replyTo, /^amq\.rabbitmq\.reply-to/);
  const plain = await ask(false);
  assert.equal(plain.deliveryMode, 1, JSON.stringify(plain));
  for (const k of ['priority', 'messageId', 'expiration', 'timestamp', 'type', 'contentType', 'appId', 'userId'])
    assert.equal(plain[k], undefined, `property ${k} without options: ${JSON.stringify(plain)}`);
  console.log(`rmq-record (${driver.kind}): ok`);
} finally {
  await driver.close();
}
