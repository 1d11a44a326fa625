// The conformance cases (DESIGN.md §4), written once and run through any driver (see drivers.mjs).
//
// A driver has:
//   send(pattern, data, {timeoutMs, headers?}) → Promise<{values, error?, failure?}>
//       headers : NATS only, message headers as [[name, value], ...] (a name may repeat)
//       values  : every reply value, in order
//       error   : the error reply (the server's `err`), exactly as received
//       failure : a local failure {kind: 'timeout'|'other', message}; no reply error, no values expected
//   emit(pattern, data) → Promise<void>  (resolves once the transport accepted the event)
//   maxPayloadBytes (optional): cases with larger payloads are skipped for that driver (the CLI driver sends
//   data over 64 KiB as `@-` on standard input, so it runs them all).
//   kind: 'nest' or 'cli' (only for checking the exact text of a client-side error).
//
// Every case is {name, run(driver, env), payloadBytes?, when?(env)}, where env = {scheme, wildcards, driver,
// mqttVersion, queue, noAck}: the URL scheme (tcp, tls, redis, rediss, nats, mqtt, mqtts, amqp, amqps, kafka — NATS over
// TLS is nats:// too), whether the server runs with wildcards (Redis PSUBSCRIBE, RabbitMQ topic exchange), the
// driver's kind (nest, cli), on MQTT the protocol version (?protocolVersion=5 on the URL: 5, else 4), and on
// RabbitMQ the work queue and the server's noAck (?queue=Q, ?noAck=false on the URL). A case with `when` only runs where it holds. Everything not tied
// to a transport's own behaviour is the same for all of them.
// Cases may run against a server shared with other runs, so event checks compare counts before and after,
// using payloads unique to this run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { scaled } from './timing.mjs';

const NO_HANDLER = 'There is no matching message handler defined in the remote service.';
const onRedis = (env) => env.scheme === 'redis' || env.scheme === 'rediss';
const onNats = (env) => env.scheme === 'nats';
const onMqtt = (env) => env.scheme === 'mqtt' || env.scheme === 'mqtts';
// MQTT 5 user properties are the message's headers (DESIGN.md §5b).
const onMqtt5 = (env) => onMqtt(env) && env.mqttVersion === 5;
const onRmq = (env) => env.scheme === 'amqp' || env.scheme === 'amqps';
// Kafka (spec kafka.md, DESIGN.md §5b): string routes only — every case named after an object pattern ({cmd:…})
// is left out (see add() below); values travel as text, so a scalar reply arrives as a string (`6` → "6",
// kafkaWire()); the Nest client emits an extra null for a terminal-only reply record.
const onKafka = (env) => env.scheme === 'kafka';
// Brokers report the concrete channel/subject/topic (RabbitMQ: the delivery's routing key) in `context`.
const hasChannel = (env) => onRedis(env) || onNats(env) || onMqtt(env) || onRmq(env) || onKafka(env);

// What a Nest client receives on Kafka for a reply value v (spec kafka.md §4–5): numbers and booleans are sent as
// their string form and not parsed back (only text starting with '{' or '[' is); strings, objects, arrays and null
// arrive as they are. Elsewhere v itself.
export const kafkaWire = (driver, v) =>
  driver.scheme === 'kafka' && (typeof v === 'number' || typeof v === 'boolean') ? String(v) : v;
// Transports whose `context` reports the request's headers (absent when it had none).
const hasHeaders = (env) => onNats(env) || onMqtt5(env) || onRmq(env);

// Assertion helper: the request completed normally with exactly these values.
export async function expectValues(driver, pattern, data, expected, opts = {}) {
  const r = await driver.send(pattern, data, opts);
  assert.equal(r.failure, undefined, `local failure: ${r.failure?.message}`);
  assert.equal(r.error, undefined, `unexpected error reply: ${JSON.stringify(r.error)}`);
  assert.deepStrictEqual(r.values, expected.map((v) => kafkaWire(driver, v)));
  return r;
}

// Assertion helper: the request ended with this error reply.
export async function expectError(driver, pattern, data, expectedError) {
  const r = await driver.send(pattern, data);
  assert.equal(r.failure, undefined, `local failure: ${r.failure?.message}`);
  assert.deepStrictEqual(r.error, expectedError);
  return r;
}

// Assertion helper: no reply at all, the request ends with the client's own (short) timeout. Redis (spec
// redis.md §3): a request on a channel nobody subscribed to is lost, and Nest's client just waits.
export async function expectNoReply(driver, pattern, data, timeoutMs = 500) {
  const r = await driver.send(pattern, data, { timeoutMs });
  assert.equal(r.error, undefined, `unexpected error reply: ${JSON.stringify(r.error)}`);
  assert.deepStrictEqual(r.values, []);
  assert.equal(r.failure?.kind, 'timeout', `expected a local timeout, got ${JSON.stringify(r.failure)}`);
  return r;
}

// Assertion helper: the `context` reply (also given by 'sensors.*' and 'alerts.>'). `transport` is the URL
// scheme name (tcp, tls, redis, rediss, nats); `pattern` the route the request matched; on Redis and NATS
// `channel` is the concrete channel/subject the request was published on. On NATS `headers` is the object
// of the request's headers ({name: first value}), absent when it had none. Returns the reply.
async function expectContext(driver, env, pattern, route, channel, headers) {
  const r = await driver.send(pattern, { any: 'thing' }, headers ? { headers } : {});
  assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
  assert.equal(r.values.length, 1);
  const v = r.values[0];
  assert.equal(v.transport, env.scheme, `transport: ${v.transport}`);
  assert.equal(v.pattern, route);
  // RabbitMQ without wildcards: requests are published to the queue itself, so the routing key is its name.
  if (hasChannel(env)) assert.equal(v.channel, onRmq(env) && !env.wildcards ? env.queue : channel);
  if (hasHeaders(env) && !headers) assert.equal(v.headers, undefined, `headers without any sent: ${JSON.stringify(v.headers)}`);
  return v;
}

// What `nestc send` reports for NC_ENOHANDLER: exit 1 with the error value (the no-handler text) as JSON on
// stderr, on every transport, as for any error reply (DESIGN §5). Returns the text.
function cliNoHandlerText(r) {
  assert.equal(r.failure, undefined, `expected exit 1 with the error value, got ${JSON.stringify(r.failure)}`);
  assert.equal(typeof r.error, 'string', `expected the no-handler text, got ${JSON.stringify(r.error)}`);
  return r.error;
}

// Assertion helper (TCP/TLS, unknown pattern): the server's no-handler error. Nest: the error value; nestc:
// NC_ENOHANDLER carrying the same value.
export async function expectNoHandler(driver, pattern, data) {
  if (driver.kind !== 'cli') return expectError(driver, pattern, data, NO_HANDLER);
  const r = await driver.send(pattern, data);
  assert.deepStrictEqual(r.values, []);
  const text = cliNoHandlerText(r);
  assert.ok(text.includes(NO_HANDLER), `message: ${text}`);
  return r;
}

// Assertion helper (NATS; Redis with nestc): a request nobody is subscribed to fails locally, well before its
// 5 s timeout, with a message that says so. Nest over NATS: `Empty response. There are no subscribers
// listening to that message ("<route>")`; nestc: NC_ENOHANDLER with a message containing "no subscribers".
export async function expectNoSubscribers(driver, pattern, route) {
  const t0 = Date.now();
  const r = await driver.send(pattern, 1, { timeoutMs: scaled(5000) });
  const ms = Date.now() - t0;
  assert.deepStrictEqual(r.values, []);
  if (driver.kind === 'nest') {
    assert.equal(r.error, undefined, `unexpected error reply: ${JSON.stringify(r.error)}`);
    assert.equal(r.failure?.kind, 'other', `expected an immediate local failure, got ${JSON.stringify(r.failure)}`);
    const text = `Empty response. There are no subscribers listening to that message ("${route}")`;
    assert.ok(r.failure.message.includes(text), `message: ${r.failure.message}`);
  } else {
    assert.match(cliNoHandlerText(r), /no subscribers/i);
  }
  // Well before the timeout: 1 s × the time factor (under ASan a CLI run over TLS took 1,094 ms on a loaded
  // machine). Under a tool (NESTC_WRAP: valgrind) starting the CLI alone takes seconds.
  if (!process.env.NESTC_WRAP) assert.ok(ms < scaled(1000), `took ${ms} ms: not immediate (limit ${scaled(1000)} ms)`);
  return r;
}

// Both registrations of a handler: the object pattern and the plain string.
const forms = (name) => [
  [`{cmd:'${name}'}`, { cmd: name }],
  [`'${name}'`, name],
];

// Query `events` until `want(result)` holds or the deadline passes. Events and queries may travel on
// different connections (the CLI opens one per command), so an event may be processed slightly later.
async function pollEvents(driver, eventRoute, want, deadlineMs = scaled(3000)) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await driver.send(driver.scheme === 'kafka' ? 'events' : { cmd: 'events' }, eventRoute);
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    const v = r.values[0];
    if (want(v) || Date.now() > end) return v;
    await new Promise((res) => setTimeout(res, 50));
  }
}

// Enough concurrent requests for replies to overtake each other on one connection (Nest, nestc's library)
// and for many CLI processes at once, light enough for a loaded 2-core machine under the sanitizers (200
// CLI processes over mutual TLS once needed more than 60 s there). Under a tool (NESTC_WRAP: valgrind)
// the CLI driver starts one valgrind'd process per request: 20.
const CONCURRENT = process.env.NESTC_WRAP ? 20 : 50;

const cases = [];
const add = (name, run, extra = {}) => {
  // Kafka has string routes only: the cases of an object pattern (their names say `{cmd:…}`) do not apply.
  if (name.includes('{cmd:')) {
    const when = extra.when;
    extra = { ...extra, when: (env) => !onKafka(env) && (!when || when(env)) };
  }
  cases.push({ name, run, ...extra });
};

for (const [label, p] of forms('sum')) add(`sum ${label} [1,2,3] → 6`, (d) => expectValues(d, p, [1, 2, 3], [6]));
for (const [label, p] of forms('asyncSum'))
  add(`asyncSum ${label} [4,5,6] → 15`, (d) => expectValues(d, p, [4, 5, 6], [15]));
for (const [label, p] of forms('streamSum'))
  add(`streamSum ${label} [1.5,2.5] → 4 (one-value stream)`, async (d) => {
    if (d.scheme !== 'kafka') return expectValues(d, p, [1.5, 2.5], [4]);
    // Kafka: the end marker rides on the value, or (NestJS's server: its stream completes one loop turn after
    // the value, spec kafka.md §8) comes in a terminal-only record, which the Nest client emits as null.
    const r = await d.send(p, [1.5, 2.5]);
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    assert.ok(
      [JSON.stringify(['4']), JSON.stringify(['4', null])].includes(JSON.stringify(r.values)),
      `values ${JSON.stringify(r.values)}: expected ["4"] or ["4",null]`,
    );
  });
for (const [label, p] of forms('streaming')) {
  add(`streaming ${label} [1,2,3] → 1,2,3`, (d) => expectValues(d, p, [1, 2, 3], [1, 2, 3]));
  // (Kafka: the end of an empty stream is a terminal-only record, which the Nest client emits as null)
  add(`streaming ${label} [] → no values`, (d) => expectValues(d, p, [], d.scheme === 'kafka' ? [null] : []));
}
for (const [label, p] of forms('exception')) {
  add(`exception ${label} 'bad' → {status,message}`, (d) =>
    expectError(d, p, 'bad', { status: 'error', message: 'bad' }));
  add(`exception ${label} object → the object itself`, (d) =>
    expectError(d, p, { code: 42, message: 'x' }, { code: 42, message: 'x' }));
  // An array is a JavaScript object too: RpcException(array) sends the array as the error.
  add(`exception ${label} array → the array itself`, (d) =>
    expectError(d, p, [1, 'two', { three: 3 }], [1, 'two', { three: 3 }]));
}
// A sum past the double range is Infinity, which JSON.stringify writes as null: the reply is null, not missing.
// (Kafka: NestJS sends a number as its string form, so its server replies "Infinity"; a server whose JSON has no
// Infinity replies null. Either is accepted there.)
for (const [label, p] of forms('sum'))
  add(`sum ${label} [1e308,1e308] → null (Infinity)`, async (d) => {
    if (d.scheme !== 'kafka') return expectValues(d, p, [1e308, 1e308], [null]);
    const r = await d.send(p, [1e308, 1e308]);
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    assert.ok(['["Infinity"]', '[null]'].includes(JSON.stringify(r.values)), `values ${JSON.stringify(r.values)}`);
  });

// echo: values that stress JSON and the TCP length prefix (UTF-16 units ≠ bytes for non-ASCII).
const nested = { a: [1, 2.5, -3, true, false, null], b: { c: { d: 'e', '': [] } }, 'k"ey\\': 'v\n\t"' };
const bigString = 'x'.repeat(1024 * 1024); // 1 MiB
const bigArray = Array.from({ length: 155_000 }, (_, i) => `item${i % 1000}`); // ~1.5 MB of JSON
const echoes = [
  ['nested object', nested],
  ['non-ASCII', 'héllo wörld ✓ 日本語'],
  ['emoji (UTF-16 surrogate pairs)', '😀🎉'],
  // strings cut inside an emoji: JSON.stringify writes the lone halves as \udxxx escapes, JSON.parse takes them
  ['lone UTF-16 surrogates', ['ab\ud83d', '\ude00x', { '\ud800': '\udfff' }, '\ude00\ud83d']],
  ['1 MiB string', bigString],
  ['1.5 MB array', bigArray],
];
for (const [label, p] of forms('echo')) {
  for (const [what, value] of echoes) {
    const bytes = Buffer.byteLength(JSON.stringify(value));
    add(`echo ${label} ${what}`, (d) => expectValues(d, p, value, [value]), { payloadBytes: bytes });
  }
}

// sleep: concurrency and out-of-order completion.
for (const [label, p] of forms('sleep')) {
  add(`sleep ${label} ${CONCURRENT} concurrent random 0–50 ms, each gets its own value`, async (d) => {
    const ms = Array.from({ length: CONCURRENT }, () => Math.floor(Math.random() * 51));
    const rs = await Promise.all(ms.map((m) => d.send(p, m, { timeoutMs: scaled(20000) })));
    rs.forEach((r, i) => {
      assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
      assert.deepStrictEqual(r.values, [kafkaWire(d, ms[i])]);
    });
  });
  // Under a tool (NESTC_WRAP) a process takes seconds to start, so the slow request sleeps longer; on a
  // loaded machine (or under a sanitizer, starting a TLS context) the second CLI process may start late too.
  const SLOW = process.env.NESTC_WRAP ? 8000 : scaled(1000);
  add(`sleep ${label} ${SLOW} and 10 concurrently: the 10 finishes first`, async (d) => {
    const order = [];
    // Kafka from the CLI: a NestJS server handles one record of a partition at a time until its first reply
    // value (spec kafka.md §7), and two `nestc send` processes each start their round-robin at a random
    // partition (one in four share one): the two requests name partitions 0 and 1 (a message-shaped object).
    const onTwo = d.scheme === 'kafka' && d.kind === 'cli';
    // Each of those processes joins the mock cluster, whose fetches are paced (500 ms a hop): a call from a
    // new process takes 0.5 s, and on a loaded machine now and then 1.5 s; the slow one sleeps longer there.
    const slowMs = onTwo ? Math.max(SLOW, scaled(3000)) : SLOW;
    const data = (m) => (onTwo ? { value: m, partition: m === slowMs ? 0 : 1 } : m);
    const track = (m) => d.send(p, data(m), { timeoutMs: slowMs + scaled(30000) }).then((r) => (order.push(m), r));
    const [slow, fast] = await Promise.all([track(slowMs), track(10)]);
    assert.deepStrictEqual(slow.values, [kafkaWire(d, slowMs)]);
    assert.deepStrictEqual(fast.values, [kafkaWire(d, 10)]);
    assert.deepStrictEqual(order, [10, slowMs]);
  });
}

// context: the route string the request matched (on Redis also the channel, which is the route here).
for (const [label, p, route] of [
  ["{cmd:'context'}", { cmd: 'context' }, '{"cmd":"context"}'],
  ["'context'", 'context', 'context'],
]) {
  add(`context ${label} → transport and pattern ${route}`, (d, env) => expectContext(d, env, p, route, route));
}

// 'sensors.*' (a string pattern only) replies like `context`. On Redis without wildcards it is a plain channel
// name; with wildcards it is a PSUBSCRIBE glob: 'sensors.kitchen' matches it, `pattern` is the glob, `channel`
// the concrete channel, and the reply travels on 'sensors.kitchen.reply'. On NATS handler routes are always
// subscription subjects, so 'sensors.*' is a NATS wildcard (one token). (Broker transports only for now.)
// On RabbitMQ with wildcards the server binds its queue to the topic exchange with every route, so 'sensors.*'
// is an AMQP wildcard (one word) there; without wildcards it is a plain pattern and 'sensors.kitchen' has no
// handler (the server's no-handler reply).
const globs = (env) => ((onRedis(env) || onRmq(env)) && env.wildcards) || onNats(env);
const noGlobs = (env) => onRedis(env) && !env.wildcards;
add(
  `'sensors.*' literally → pattern and channel 'sensors.*'`,
  (d, env) => expectContext(d, env, 'sensors.*', 'sensors.*', 'sensors.*'),
  { when: (env) => onRedis(env) || onRmq(env) },
);
add(
  `wildcards: 'sensors.kitchen' → pattern 'sensors.*', channel 'sensors.kitchen'`,
  (d, env) => expectContext(d, env, 'sensors.kitchen', 'sensors.*', 'sensors.kitchen'),
  { when: globs },
);
add(
  `no wildcards: 'sensors.kitchen' is not subscribed → no reply (Nest: local timeout) / immediate "no subscribers" (nestc)`,
  (d) =>
    d.kind === 'cli'
      ? expectNoSubscribers(d, 'sensors.kitchen', 'sensors.kitchen')
      : expectNoReply(d, 'sensors.kitchen', 1),
  { when: noGlobs },
);
add(
  `RabbitMQ without wildcards: 'sensors.kitchen' → no-handler error`,
  (d) => expectNoHandler(d, 'sensors.kitchen', 1),
  { when: (env) => onRmq(env) && !env.wildcards },
);

// NATS full wildcard 'alerts.>' (a string pattern only, replies like `context`): one or more further tokens.
add(
  `NATS 'alerts.a.b' → pattern 'alerts.>', channel 'alerts.a.b'`,
  (d, env) => expectContext(d, env, 'alerts.a.b', 'alerts.>', 'alerts.a.b'),
  { when: onNats },
);
add(
  `NATS 'alerts.x' → pattern 'alerts.>', channel 'alerts.x'`,
  (d, env) => expectContext(d, env, 'alerts.x', 'alerts.>', 'alerts.x'),
  { when: onNats },
);

// MQTT filters (DESIGN.md §5b, spec mqtt.md §2): 'sensors/+/temp' (one level) and 'alerts/#' (the rest) reply
// like `context` with the filter as `pattern` and the concrete topic as `channel`; the reply goes to
// '<topic>/reply'. 'alerts/#' also receives that reply, which the server must not answer (it is an event to it).
add(
  `MQTT 'sensors/kitchen/temp' → pattern 'sensors/+/temp', channel 'sensors/kitchen/temp'`,
  (d, env) => expectContext(d, env, 'sensors/kitchen/temp', 'sensors/+/temp', 'sensors/kitchen/temp'),
  { when: onMqtt },
);
add(
  `MQTT 'alerts/a/b' → pattern 'alerts/#', channel 'alerts/a/b'`,
  (d, env) => expectContext(d, env, 'alerts/a/b', 'alerts/#', 'alerts/a/b'),
  { when: onMqtt },
);
add(
  `MQTT 'alerts/x' → pattern 'alerts/#', channel 'alerts/x'`,
  (d, env) => expectContext(d, env, 'alerts/x', 'alerts/#', 'alerts/x'),
  { when: onMqtt },
);

// MQTT 5 user properties (MqttRecord properties.userProperties / `nestc send --header k=v`) reach the handler
// as its headers (DESIGN.md §5b): the same cases as the NATS headers below.
add(
  `MQTT 5 user properties: context with x-trace: t-1 → headers.x-trace 't-1'`,
  async (d, env) => {
    const v = await expectContext(d, env, 'context', 'context', 'context', [['x-trace', 't-1']]);
    assert.equal(v.headers?.['x-trace'], 't-1', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onMqtt5 },
);
add(
  `MQTT 5 user properties: two and an object pattern → both reported`,
  async (d, env) => {
    const sent = [['x-trace', 't-2'], ['x-version', '1.0.0']];
    const v = await expectContext(d, env, { cmd: 'context' }, '{"cmd":"context"}', '{"cmd":"context"}', sent);
    assert.equal(v.headers?.['x-trace'], 't-2', `headers: ${JSON.stringify(v.headers)}`);
    assert.equal(v.headers?.['x-version'], '1.0.0', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onMqtt5 },
);
// Only through the Nest client, as on NATS: `nestc send --header` takes one value per name.
add(
  `MQTT 5 user properties: a repeated name → its first value`,
  async (d, env) => {
    const v = await expectContext(d, env, 'context', 'context', 'context', [['x-multi', 'a'], ['x-multi', 'b']]);
    assert.equal(v.headers?.['x-multi'], 'a', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: (env) => onMqtt5(env) && env.driver !== 'cli' },
);

// NATS message headers (NatsRecord headers / `nestc send --header k=v`) reach the handler: `context` reports
// them as {name: value}; a name that occurs twice reports its first value.
add(
  `NATS headers: context with x-trace: t-1 → headers.x-trace 't-1'`,
  async (d, env) => {
    const v = await expectContext(d, env, 'context', 'context', 'context', [['x-trace', 't-1']]);
    assert.equal(v.headers?.['x-trace'], 't-1', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onNats },
);
add(
  `NATS headers: two headers and an object pattern → both reported`,
  async (d, env) => {
    const sent = [['x-trace', 't-2'], ['x-version', '1.0.0']];
    const v = await expectContext(d, env, { cmd: 'context' }, '{"cmd":"context"}', '{"cmd":"context"}', sent);
    assert.equal(v.headers?.['x-trace'], 't-2', `headers: ${JSON.stringify(v.headers)}`);
    assert.equal(v.headers?.['x-version'], '1.0.0', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onNats },
);
// Only through the Nest client: `nestc send --header` takes one value per name (a repeated flag replaces it).
add(
  `NATS headers: a repeated header → its first value`,
  async (d, env) => {
    const v = await expectContext(d, env, 'context', 'context', 'context', [['x-multi', 'a'], ['x-multi', 'b']]);
    assert.equal(v.headers?.['x-multi'], 'a', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: (env) => onNats(env) && env.driver !== 'cli' },
);

// RabbitMQ headers (RmqRecord options.headers / `nestc send --header k=v`) reach the handler as the AMQP
// headers table (DESIGN.md §5b). A table holds one value per name: no repeated-name case.
add(
  `RabbitMQ headers: context with x-trace: t-1 → headers.x-trace 't-1'`,
  async (d, env) => {
    const v = await expectContext(d, env, 'context', 'context', 'context', [['x-trace', 't-1']]);
    assert.equal(v.headers?.['x-trace'], 't-1', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onRmq },
);
add(
  `RabbitMQ headers: two and an object pattern → both reported`,
  async (d, env) => {
    const sent = [['x-trace', 't-2'], ['x-version', '1.0.0']];
    const v = await expectContext(d, env, { cmd: 'context' }, '{"cmd":"context"}', '{"cmd":"context"}', sent);
    assert.equal(v.headers?.['x-trace'], 't-2', `headers: ${JSON.stringify(v.headers)}`);
    assert.equal(v.headers?.['x-version'], '1.0.0', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onRmq },
);

// Kafka (DESIGN.md §5b): `context` also reports `messageKey` (the record key as text, null without one) and
// `headers`, every record header as text (Nest's own kafka_correlationId/kafka_replyTopic/kafka_replyPartition
// among them). Record headers come from the Nest client as a message-shaped object {value, headers}, from the CLI
// as `--header k=v`; a record key only from the Nest client.
add(
  `Kafka: context → channel 'context', messageKey null, the reply topic among the headers`,
  async (d, env) => {
    const v = await expectContext(d, env, 'context', 'context', 'context');
    assert.equal(v.messageKey, null, `messageKey: ${JSON.stringify(v.messageKey)}`);
    assert.equal(v.headers?.kafka_replyTopic, 'context.reply', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onKafka },
);
add(
  `Kafka: record headers x-trace and x-version → reported in context.headers`,
  async (d, env) => {
    const sent = [['x-trace', 't-1'], ['x-version', '1.0.0']];
    const v = await expectContext(d, env, 'context', 'context', 'context', sent);
    assert.equal(v.headers?.['x-trace'], 't-1', `headers: ${JSON.stringify(v.headers)}`);
    assert.equal(v.headers?.['x-version'], '1.0.0', `headers: ${JSON.stringify(v.headers)}`);
  },
  { when: onKafka },
);
add(
  `Kafka: a record key 'user-1' → context.messageKey 'user-1'`,
  async (d, env) => {
    const r = await d.send('context', { any: 'thing' }, { key: 'user-1' });
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    assert.equal(r.values.length, 1);
    assert.equal(r.values[0].messageKey, 'user-1', JSON.stringify(r.values[0]));
    assert.equal(r.values[0].channel, 'context');
  },
  { when: (env) => onKafka(env) && env.driver !== 'cli' },
);

// events: notification has two handlers (count +2 per event), user_created one.
for (const [label, p, route, perEvent, n] of [
  ["'notification'", 'notification', 'notification', 2, 3],
  ["{cmd:'notification'}", { cmd: 'notification' }, '{"cmd":"notification"}', 2, 3],
  ["'user_created'", 'user_created', 'user_created', 1, 1],
  ["{cmd:'user_created'}", { cmd: 'user_created' }, '{"cmd":"user_created"}', 1, 1],
]) {
  add(`events ${label}: ${n} event(s) → count +${perEvent * n}, payloads in order`, async (d) => {
    const run = randomUUID();
    const payloads = Array.from({ length: n }, (_, i) => ({ run, i, text: `é${i}` }));
    const before = await pollEvents(d, route, () => true);
    for (const x of payloads) await d.emit(p, x);
    const want = before.count + perEvent * n;
    const after = await pollEvents(d, route, (v) => v.count >= want);
    assert.equal(after.count, want);
    const seen = after.payloads.filter((x) => x?.run === run);
    // Kafka orders records within a partition only, and events without a key are spread over the topic's
    // partitions: all of them, in any order.
    if (d.scheme === 'kafka') seen.sort((a, b) => a.i - b.i);
    assert.deepStrictEqual(seen, payloads);
  });
}

// Unknown pattern: TCP servers answer with the no-handler error (nestc: NC_ENOHANDLER with that value); on
// Redis nobody is subscribed to the channel, so there is no reply at all and Nest's client waits for its own
// timeout (spec redis.md §3), while nestc sees PUBLISH reach 0 subscribers and fails at once with
// NC_ENOHANDLER ("no subscribers"). On NATS the broker itself answers a request nobody is subscribed to
// (no-responders status, spec nats.md §4): the client fails at once, locally — Nest with
// EmptyResponseException, `nestc send` with NC_ENOHANDLER and "no subscribers".
for (const [label, p, route] of [
  ["{cmd:'nope'}", { cmd: 'nope' }, '{"cmd":"nope"}'],
  ["'nope'", 'nope', 'nope'],
]) {
  // (RabbitMQ without wildcards too: the request reaches the server through its queue, and the server replies
  // with the no-handler error, spec rmq.md §3.3; with noAck=false it also nacks the request without requeue.)
  add(`unknown pattern ${label} → no-handler error`, (d) => expectNoHandler(d, p, 1), {
    when: (env) => !onRedis(env) && !onNats(env) && !onMqtt(env) && !(onRmq(env) && env.wildcards) && !onKafka(env),
  });
  // Kafka: the request goes to the topic 'nope' (created on first use), which no server consumes: nobody
  // replies, and the Nest client waits for its own timeout. nestc may know better (e.g. from the broker) and
  // fail at once with NC_ENOHANDLER: either is accepted from the CLI, never a reply value.
  add(
    `unknown pattern ${label} → no reply (Kafka: nobody consumes the topic)`,
    async (d) => {
      if (d.kind !== 'cli') return expectNoReply(d, p, 1, 500);
      const r = await d.send(p, 1, { timeoutMs: 500 });
      assert.deepStrictEqual(r.values, []);
      if (r.failure?.kind !== 'timeout') cliNoHandlerText(r);
    },
    { when: onKafka },
  );
  // RabbitMQ with wildcards: the client publishes to the topic exchange with the pattern as routing key, no
  // binding matches, the broker drops the message and nobody replies: the Nest client waits for its own
  // timeout. nestc may instead learn it from the broker (a mandatory publish comes back with Basic.Return) and
  // fail at once with NC_ENOHANDLER: either is accepted from the CLI, never a reply value.
  add(
    `unknown pattern ${label} → routed nowhere: no reply (RabbitMQ wildcards)`,
    async (d) => {
      if (d.kind !== 'cli') return expectNoReply(d, p, 1, 500);
      const r = await d.send(p, 1, { timeoutMs: 500 });
      assert.deepStrictEqual(r.values, []);
      if (r.failure?.kind !== 'timeout') cliNoHandlerText(r);
    },
    { when: (env) => onRmq(env) && env.wildcards },
  );
  // MQTT (spec mqtt.md §3, "Unknown pattern"): nobody subscribes to the topic, the request is lost and the
  // client waits; unlike Redis's PUBLISH, an MQTT PUBLISH does not tell how many received it, so nestc cannot
  // fail early either: both clients end with their own timeout.
  add(`unknown pattern ${label} → no reply, the client's own timeout (MQTT)`, (d) => expectNoReply(d, p, 1, 500), {
    when: onMqtt,
  });
  add(
    `unknown pattern ${label} → no reply (Nest: local 500 ms timeout) / immediate "no subscribers" (nestc)`,
    (d) => (d.kind === 'cli' ? expectNoSubscribers(d, p, route) : expectNoReply(d, p, 1, 500)),
    { when: onRedis },
  );
  add(
    `unknown pattern ${label} → immediate "no subscribers" failure (NATS no responders)`,
    (d) => expectNoSubscribers(d, p, route),
    { when: onNats },
  );
}

// The reply comes 2 s × the time factor after the request: later than the client's timeout however
// slowly the client process starts.
const LATE = scaled(2000);
add(`timeout: sleep ${LATE} with a 300 ms client timeout times out`, async (d) => {
  const t0 = Date.now();
  const r = await d.send(d.scheme === 'kafka' ? 'sleep' : { cmd: 'sleep' }, LATE, { timeoutMs: 300 });
  assert.equal(r.error, undefined, `unexpected error reply: ${JSON.stringify(r.error)}`);
  assert.deepStrictEqual(r.values, []);
  assert.equal(r.failure?.kind, 'timeout', `expected a timeout, got ${JSON.stringify(r.failure)}`);
  // Under a tool (NESTC_WRAP: valgrind) starting the process alone takes seconds; the reply at 2000 ms would
  // then show up in `values`, which the assertions above already rule out.
  if (!process.env.NESTC_WRAP) assert.ok(Date.now() - t0 < LATE - 100, 'the timeout fired too late');
});

// RabbitMQ: events nobody handles (in default mode the server receives them and, with noAck=false, rejects them
// without requeue, spec rmq.md §4.3; with wildcards they route nowhere) do not disturb the server.
add(
  `RabbitMQ: unknown events 'nope_event' and {cmd:'nope_event'} are dropped, the server goes on`,
  async (d) => {
    await d.emit('nope_event', 1);
    await d.emit({ cmd: 'nope_event' }, 2);
    await expectValues(d, 'sum', [2, 3], [5]);
  },
  { when: onRmq },
);

// RabbitMQ with noAck=false (DESIGN.md §5b): the server settles every delivery exactly once, so once the cases
// are done the queue holds no message, neither ready nor unacknowledged (a missing ack leaves one
// unacknowledged; a second ack of the same delivery makes the broker close the channel, after which the server
// receives nothing and every later case fails). Counted by the broker itself (RMQ_CTL: rabbitmqctl for the
// test's broker, from with-rabbitmq.sh / with-shared-rabbitmq.sh); polled, since the 2 s `sleep` of the timeout
// case may still be running.
add(
  `RabbitMQ noAck=false: every delivery settled (the broker counts 0 ready, 0 unacknowledged)`,
  async (d, env) => {
    const ctl = process.env.RMQ_CTL;
    assert.ok(ctl, 'RMQ_CTL is not set (run under with-rabbitmq.sh or with-shared-rabbitmq.sh)');
    const columns = ['name', 'messages_ready', 'messages_unacknowledged'];
    const end = Date.now() + scaled(30000);
    let row;
    for (;;) {
      const out = execFileSync(ctl, ['list_queues', '-q', '--no-table-headers', ...columns], { encoding: 'utf8' });
      row = out
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .find((f) => f[0] === env.queue);
      assert.ok(row, `queue ${env.queue} not listed by the broker: ${out}`);
      if ((row[1] === '0' && row[2] === '0') || Date.now() > end) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.deepStrictEqual(row.slice(1, 3), ['0', '0'], `queue ${env.queue}: ready ${row[1]}, unacknowledged ${row[2]}`);
  },
  { when: (env) => onRmq(env) && !env.noAck },
);

export { cases, NO_HANDLER };
