// Load from NestJS's own client (ClientProxyFactory, Transport.TCP, Transport.REDIS, Transport.NATS,
// Transport.MQTT, Transport.RMQ or Transport.KAFKA; the transport and its options from nest-transport.mjs), for
// comparing client libraries: how many responses per second one NestJS client process can
// drive.
//
//   node nest-client.mjs (--port P [--host H] | --url tcp://H:P | --url redis://H:P | --url nats://H:P
//                         | --url mqtt://H:P[?qos=1] | --url amqp://H:P?queue=Q | --url kafka://H:P[,H:P…])
//                        [--pattern JSON] [--data JSON] [--connections C] [--inflight N]
//                        [--duration S] [--warmup S] [--server-pid PID] [--broker-pid PID]
//
// Each connection is one ClientProxy (NestJS opens one socket per TCP client, two Redis connections per Redis
// client: one publishing, one subscribed; one NATS connection per NATS client, with an inbox subscription per
// request; one MQTT connection per MQTT client, subscribed to `<pattern>/reply` while a request on the pattern is
// pending; ?qos=N sends every request as an MqttRecord with that QoS, as a NestJS user asks for one; one RabbitMQ
// connection and channel per RMQ client, publishing to the queue Q and consuming the direct reply-to
// pseudo-queue, NestJS's defaults; other URL parameters, e.g. noAck, are the server's and ignored; one ClientKafka
// per Kafka client: a producer, and a consumer of '<pattern>.reply' in a group of its own; it sends probes until
// one is answered before the load starts, see below) keeping N
// requests in flight: every completed request sends the
// next. Only responses completed inside the counting window, after the warm-up, are counted; their latency
// runs from the send() call to the completion. With --server-pid / --broker-pid the CPU time (user + system,
// all threads) of those processes is read from /proc/PID/stat at the window's edges, as `nestc bench
// --server-pid` does. Prints one JSON line:
//   {"requests","errors","rps","p50_us","p99_us","connections","inflight","duration_s","engine":"nestjs",
//    "client_cpu_us_per_resp","client_cpu_s"[,"server_cpu_s","server_cpu_us_per_resp"]
//    [,"broker_cpu_s","broker_cpu_us_per_resp"],"transport"}
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { firstValueFrom, timeout } from 'rxjs';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, MqttRecordBuilder } from '@nestjs/microservices';
import { clientTransport, parseTarget } from './nest-transport.mjs';

// Only warnings and errors: the Redis client logs "Connected to Redis" on stdout, where the JSON line goes.
Logger.overrideLogger(['error', 'warn']);

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    url: { type: 'string' },
    pattern: { type: 'string', default: '{"cmd":"sum"}' },
    data: { type: 'string', default: '[1,2,3]' },
    connections: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '100' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'server-pid': { type: 'string' },
    'broker-pid': { type: 'string' },
  },
});
const target = args.port || args.url ? parseTarget(args) : null;
if (!target) {
  console.error(
    'usage: node nest-client.mjs (--port P [--host H] | --url tcp://H:P | --url redis://H:P | --url nats://H:P | ' +
      '--url mqtt://H:P[?qos=N] | --url amqp://H:P?queue=Q | --url kafka://H:P[,H:P…]) ' +
      '[--pattern P] [--data JSON] [--connections C] [--inflight N] [--duration S] [--warmup S] ' +
      '[--server-pid PID] [--broker-pid PID]',
  );
  process.exit(2);
}
const { kind, qos } = target;

// A pattern that parses as JSON is an object (or number) pattern, as nestc's CLI reads it.
let pattern = args.pattern;
try {
  pattern = JSON.parse(args.pattern);
} catch {
  /* a plain string pattern */
}
const data = JSON.parse(args.data);
// MQTT with a QoS: each request carries it in an MqttRecord (a fresh one per send: ClientMqtt deletes the
// record's options once it has read them).
const payload = kind === 'mqtt' && qos ? () => new MqttRecordBuilder(data).setQoS(qos).build() : () => data;
const connections = Number(args.connections);
const inflight = Number(args.inflight);
const duration = Number(args.duration);
const warmup = Number(args.warmup);
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

// CPU seconds (utime + stime, fields 14 and 15) of a process, from /proc/PID/stat; null if it is gone.
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();
const cpuOf = (pid) => {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
};
for (const pid of [args['server-pid'], args['broker-pid']])
  if (pid && cpuOf(pid) == null) {
    console.error(`nest-client.mjs: cannot read /proc/${pid}/stat`);
    process.exit(2);
  }

const clients = [];
for (let i = 0; i < connections; i++) {
  const client = ClientProxyFactory.create(clientTransport(target));
  // ClientKafka consumes '<pattern>.reply' only for patterns declared before it connects.
  if (kind === 'kafka') client.subscribeToResponseOf(pattern);
  await client.connect();
  clients.push(client);
}

// Kafka: the reply consumer starts at "latest", which KafkaJS resolves at its first fetch after connect()
// (the group join): a reply produced before that would be skipped, and its request would hold its slot for
// good. One request at a time, each given 2 s, until one is answered: from then on the position is set (every
// reply of this client goes to the one reply partition its group assigned it).
if (kind === 'kafka')
  for (const client of clients)
    for (let i = 0; ; i++) {
      try {
        await firstValueFrom(client.send(pattern, payload()).pipe(timeout(2000)));
        break;
      } catch (err) {
        if (i === 14) {
          console.error(`nest-client.mjs: no reply to a probe in 30 s (${err?.message ?? err})`);
          process.exit(1);
        }
      }
    }

let running = true;
let counting = false;
let responses = 0;
let errors = 0;
const latencies = []; // µs, completions inside the window
function fire(client) {
  const t = performance.now();
  client.send(pattern, payload()).subscribe({
    error: () => {
      errors++;
      if (running) fire(client);
    },
    complete: () => {
      responses++;
      if (counting) latencies.push((performance.now() - t) * 1000);
      if (running) fire(client);
    },
  });
}
for (const client of clients) for (let i = 0; i < inflight; i++) fire(client);

await sleep(warmup);
const r0 = responses;
const e0 = errors;
const srv0 = cpuOf(args['server-pid']);
const brk0 = cpuOf(args['broker-pid']);
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
counting = true;
await sleep(duration);
counting = false;
const r1 = responses;
const e1 = errors;
const cpu = process.cpuUsage(cpu0);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const srv1 = cpuOf(args['server-pid']);
const brk1 = cpuOf(args['broker-pid']);
running = false;

const requests = r1 - r0;
latencies.sort((a, b) => a - b);
const pct = (q) =>
  latencies.length ? Number(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1)) : null;
const perResp = (s) => (s != null && requests ? Number(((s * 1e6) / requests).toFixed(3)) : null);
const out = {
  requests,
  errors: e1 - e0,
  rps: Math.round(requests / secs),
  p50_us: pct(0.5),
  p99_us: pct(0.99),
  connections,
  inflight,
  duration_s: Number(secs.toFixed(3)),
  engine: 'nestjs',
  client_cpu_us_per_resp: requests ? Number(((cpu.user + cpu.system) / requests).toFixed(3)) : null,
  client_cpu_s: Number(((cpu.user + cpu.system) / 1e6).toFixed(3)),
};
if (args['server-pid']) {
  const s = srv0 != null && srv1 != null ? srv1 - srv0 : null;
  out.server_cpu_s = s == null ? null : Number(s.toFixed(3));
  out.server_cpu_us_per_resp = perResp(s);
}
if (args['broker-pid']) {
  const s = brk0 != null && brk1 != null ? brk1 - brk0 : null;
  out.broker_cpu_s = s == null ? null : Number(s.toFixed(3));
  out.broker_cpu_us_per_resp = perResp(s);
}
out.transport = kind === 'mqtt' && qos ? `mqtt-qos${qos}` : kind;
console.log(JSON.stringify(out));
// Requests still in flight are abandoned: the figures are taken.
process.exit(0);
