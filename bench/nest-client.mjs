// Load from NestJS's own TCP client (ClientProxyFactory, Transport.TCP), for comparing client libraries:
// how many responses per second one NestJS client process can drive.
//
//   node nest-client.mjs --port P [--host H] [--pattern JSON] [--data JSON]
//                        [--connections C] [--inflight N] [--duration S] [--warmup S]
//
// Each connection is one ClientProxy (NestJS opens one socket per client) keeping N requests in flight:
// every completed request sends the next. Only responses completed inside the counting window, after the
// warm-up, are counted. Prints one JSON line:
//   {"requests","errors","rps","connections","inflight","duration_s","engine":"nestjs","client_cpu_us_per_resp"}
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    pattern: { type: 'string', default: '{"cmd":"sum"}' },
    data: { type: 'string', default: '[1,2,3]' },
    connections: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '100' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
  },
});
if (!args.port) {
  console.error('usage: node nest-client.mjs --port P [--connections C] [--inflight N] [--duration S] [--warmup S]');
  process.exit(2);
}

// A pattern that parses as JSON is an object (or number) pattern, as nestc's CLI reads it.
let pattern = args.pattern;
try {
  pattern = JSON.parse(args.pattern);
} catch {
  /* a plain string pattern */
}
const data = JSON.parse(args.data);
const connections = Number(args.connections);
const inflight = Number(args.inflight);
const duration = Number(args.duration);
const warmup = Number(args.warmup);
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

const clients = [];
for (let i = 0; i < connections; i++) {
  const client = ClientProxyFactory.create({
    transport: Transport.TCP,
    options: { host: args.host, port: Number(args.port) },
  });
  await client.connect();
  clients.push(client);
}

let running = true;
let responses = 0;
let errors = 0;
function fire(client) {
  client.send(pattern, data).subscribe({
    error: () => {
      errors++;
      if (running) fire(client);
    },
    complete: () => {
      responses++;
      if (running) fire(client);
    },
  });
}
for (const client of clients) for (let i = 0; i < inflight; i++) fire(client);

await sleep(warmup);
const r0 = responses;
const e0 = errors;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await sleep(duration);
const r1 = responses;
const e1 = errors;
const cpu = process.cpuUsage(cpu0);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
running = false;

const requests = r1 - r0;
console.log(
  JSON.stringify({
    requests,
    errors: e1 - e0,
    rps: Math.round(requests / secs),
    connections,
    inflight,
    duration_s: Number(secs.toFixed(3)),
    engine: 'nestjs',
    client_cpu_us_per_resp: requests ? Number(((cpu.user + cpu.system) / requests).toFixed(3)) : null,
  }),
);
// Requests still in flight are abandoned: the figures are taken.
process.exit(0);
