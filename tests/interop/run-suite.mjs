// Runs every conformance case with one driver against an already-running server.
//
//   node run-suite.mjs --driver nest|cli --url tcp://127.0.0.1:P [--ca F --cert F --key F] [--only REGEX]
//                      [--wildcards]
//
// --url may also be redis://H:P, rediss://H:P, nats://H:P, mqtt://H:P, mqtts://H:P, amqp://H:P?queue=Q,
// amqps://H:P?queue=Q or kafka://H:P[,H:P…] (the broker the server is subscribed to; NATS over TLS is nats:// too, with --ca; MQTT 5 with
// ?protocolVersion=5; RabbitMQ's query holds the server's options, ?wildcards=true and ?noAck=false among them).
// --wildcards: the server runs with Redis wildcards (PSUBSCRIBE), which enables the cases that need it.
//
// Uses node:test, so the output ends with the TAP summary (`# pass N`, `# fail N`) and the exit code is
// non-zero when a case fails. The cli driver needs NESTC_BIN.
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FACTOR } from './timing.mjs';

// Always report as TAP (Node picks "spec" when stdout is a terminal, and in newer Node always):
// re-run ourselves with the reporter set, since a script cannot choose it after start.
if (!process.execArgv.some((a) => a.startsWith('--test-reporter'))) {
  const r = spawnSync(
    process.execPath,
    ['--test-reporter=tap', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(r.status ?? 1);
}

const { cases } = await import('./conformance-cases.mjs');
const { makeDriver } = await import('./drivers.mjs');

const { values: args } = parseArgs({
  options: {
    driver: { type: 'string', default: 'nest' },
    url: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    only: { type: 'string' },
    wildcards: { type: 'boolean', default: false },
  },
});
if (!args.url) {
  console.error(
    'usage: node run-suite.mjs --driver nest|cli --url URL [--ca F --cert F --key F] [--only REGEX] [--wildcards]',
  );
  process.exit(2);
}

const driver = makeDriver(args.driver, args.url, { ca: args.ca, cert: args.cert, key: args.key });
// What the cases may depend on (see conformance-cases.mjs).
// (the query by hand: kafka://H:P,H:P,… with several brokers is no WHATWG URL)
const query = new URLSearchParams(args.url.split('?')[1] ?? '');
const mqttVersion = Number(query.get('protocolVersion') ?? 4);
// RabbitMQ: the work queue (`context.channel` in default mode), wildcards and noAck as the server runs them.
const env = {
  scheme: driver.scheme,
  wildcards: args.wildcards || query.get('wildcards') === 'true',
  driver: driver.kind,
  mqttVersion,
  queue: query.get('queue') ?? '',
  noAck: query.get('noAck') !== 'false',
};
after(() => driver.close());

function withDeadline(promise, ms) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`case did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// On a loaded machine, under the sanitizers or under a tool (NESTC_WRAP, e.g. valgrind) every nestc process
// starts and runs slower; the concurrent-process cases then need far longer. Deadlines grow by this factor.
const slow = FACTOR;

const only = args.only ? new RegExp(args.only) : null;
for (const c of cases) {
  if (only && !only.test(c.name)) continue;
  if (c.when && !c.when(env)) continue; // a case for another transport or mode
  let skip = false;
  if (driver.maxPayloadBytes && (c.payloadBytes ?? 0) > driver.maxPayloadBytes) {
    skip = `payload of ${c.payloadBytes} bytes does not fit in one command-line argument (limit 128 KiB) and the CLI has no stdin form`;
  }
  // Top-level tests run one after the other, which the timing cases (sleep ordering, timeout) rely on.
  // Our own deadline makes a hung case a failure: node:test counts its own timeouts as "cancelled",
  // which a reader of "# fail 0" would miss.
  test(`[${args.driver}] ${c.name}`, { skip, timeout: 120000 * slow }, () => withDeadline(c.run(driver, env), 60000 * slow));
}
