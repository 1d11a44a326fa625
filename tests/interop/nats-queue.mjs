// NATS queue groups: servers started with the same queue share the work; without a queue every server gets
// every message.
//
//   node nats-queue.mjs --servers nestc,nest      (under with-nats.sh: NATS_URL, NATS_MONITOR_URL)
//
// --servers: two (or more) conformance servers, each `nest` (nest-server.mjs) or `nestc` ($NESTC_BIN
// conformance, under $NESTC_WRAP if set), started here one after the other against the same broker, and
// stopped by PID.
//
// Phase 1, queue: every server started with queue group "q" (nestc: URL query ?queue=q, Nest: --queue q).
//   a. All handler subscriptions are in queue group "q" (nats-server monitoring, /connz?subs=detail).
//   b. 100 requests {cmd:'sum'} [i, 1] from a NestJS client, concurrently: every one answered with i+1.
//      Who answered is read from the broker: the monitoring endpoint counts the messages delivered to each
//      subscription. The connections of each server are known because the servers start one at a time (the
//      connections that appeared with a server's subscriptions are that server's). Each server's '{"cmd":"sum"}'
//      subscriptions got some of the 100 (a random split: all on one server has probability 2^-99), together
//      exactly 100.
//   c. 100 'notification' events: the broker counts split the same way, and the servers agree: `events` is
//      queried (through the queue, so any member answers) until two replies show DISJOINT non-empty sets of
//      this run's payloads that together hold all 100. A server's record only grows, so two disjoint
//      non-empty snapshots must come from two different servers; and each reply's count must be twice its
//      payloads (two `notification` handlers, fresh servers).
// Phase 2, no queue: the servers are restarted without a queue.
//   a. No subscription has a queue group.
//   b. 20 requests from a NestJS client: all answered (the client keeps the first reply); the broker
//      delivered every one to every server.
//   c. One 'notification' event; then a request packet for `events` is published by hand (nats.js, own
//      inbox), because a Nest client keeps only the FIRST reply for an id: every server must answer it,
//      showing the payload once and count 2.
// Exits 0 when all of that held, 1 otherwise.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { connect } from '@nats-io/transport-node';
import { lastValueFrom, timeout, toArray } from 'rxjs';
import { FACTOR } from './timing.mjs';

Logger.overrideLogger(['error', 'warn']);
const { values: args } = parseArgs({
  options: {
    servers: { type: 'string', default: 'nestc,nest' },
    url: { type: 'string' },
    monitor: { type: 'string' },
    queue: { type: 'string', default: 'q' },
  },
});
const url = args.url ?? process.env.NATS_URL;
const monitor = args.monitor ?? process.env.NATS_MONITOR_URL;
const kinds = args.servers.split(',').filter(Boolean);
if (!url?.startsWith('nats://') || !monitor || kinds.length < 2 || kinds.some((k) => !['nest', 'nestc'].includes(k))) {
  console.error(
    'usage: NATS_URL=nats://H:P NATS_MONITOR_URL=http://H:M node nats-queue.mjs --servers nestc|nest,nestc|nest[,...]',
  );
  process.exit(2);
}
const slow = FACTOR; // NESTC_TEST_TIMEOUT_FACTOR, at least 6 under valgrind (timing.mjs)
const readyMs = 60000 * slow; // a readiness wait: it ends at the readiness line
const problems = [];
const check = (ok, what) => {
  if (!ok) problems.push(what);
  return ok;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- servers ---------------------------------------------------------------------------------------------

const running = []; // every server started, for stopping them whatever happens

// Starts one server and resolves once it printed its readiness line (then it is subscribed).
function startServer(kind, i, queue) {
  let cmd;
  let ready;
  if (kind === 'nest') {
    cmd = [process.execPath, fileURLToPath(new URL('./nest-server.mjs', import.meta.url)), '--url', url];
    if (queue) cmd.push('--queue', queue);
    ready = /^READY/m;
  } else {
    if (!process.env.NESTC_BIN) throw new Error('nestc servers need NESTC_BIN');
    const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
    cmd = [...wrap, process.env.NESTC_BIN, 'conformance', queue ? `${url}?queue=${encodeURIComponent(queue)}` : url];
    ready = /^nestc conformance listening/m;
  }
  const name = `server ${i + 1} (${kind}${queue ? `, queue ${queue}` : ''})`;
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { name, kind, child, output: '', exited: null, cids: new Set() };
  s.exitedPromise = new Promise((resolve) => child.on('close', (code, signal) => resolve((s.exited = { code, signal }))));
  running.push(s);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no readiness line after ${readyMs} ms`)), readyMs);
    const onData = (d) => {
      s.output += d;
      if (ready.test(s.output)) {
        clearTimeout(timer);
        resolve(s);
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.exitedPromise.then(({ code, signal }) => (clearTimeout(timer), reject(new Error(`${name} exited (${code ?? signal})`))));
  });
}

// SIGTERM, wait; a nestc server must exit 0 (graceful shutdown, and no sanitizer/valgrind error).
async function stopServer(s) {
  if (!s.exited) {
    s.child.kill('SIGTERM');
    const killer = setTimeout(() => s.child.kill('SIGKILL'), (process.env.NESTC_WRAP ? 10000 : 5000) * slow);
    await s.exitedPromise;
    clearTimeout(killer);
  }
  if (s.kind === 'nestc' && s.exited.code !== 0) {
    problems.push(`${s.name} did not exit cleanly: ${JSON.stringify(s.exited)}`);
  }
}

// ---- the broker's view (monitoring) ------------------------------------------------------------------------

// Every client connection with its subscriptions: [{cid, subs: [{subject, qgroup, msgs}]}].
async function connections() {
  const res = await fetch(`${monitor}/connz?subs=detail&limit=1024`);
  if (!res.ok) throw new Error(`monitoring ${monitor}: HTTP ${res.status}`);
  const body = await res.json();
  return body.connections.map((c) => ({ cid: c.cid, subs: c.subscriptions_list_detail ?? [] }));
}

const CONFORMANCE_SUBJECT = '{"cmd":"sum"}'; // every conformance server subscribes to it

// Starts the servers one at a time; after each, the new connections that subscribe to the conformance subjects
// are that server's. Returns the servers.
async function startAll(queue) {
  const servers = [];
  for (const [i, kind] of kinds.entries()) {
    const known = new Set(running.flatMap((s) => [...s.cids]));
    const s = await startServer(kind, i, queue);
    // The server is subscribed (readiness line); the monitoring endpoint shows it at once.
    for (const c of await connections()) {
      if (!known.has(c.cid) && c.subs.some((x) => x.subject === CONFORMANCE_SUBJECT)) s.cids.add(c.cid);
    }
    if (!s.cids.size) throw new Error(`${s.name}: no connection subscribed to ${CONFORMANCE_SUBJECT}`);
    servers.push(s);
  }
  console.log(`started ${servers.map((s) => `${s.name} [connections ${[...s.cids].join(',')}]`).join(', ')}`);
  return servers;
}

// Messages the broker delivered to each server's subscriptions on `subject`: [n per server].
async function delivered(servers, subject) {
  const conns = await connections();
  return servers.map((s) =>
    conns
      .filter((c) => s.cids.has(c.cid))
      .flatMap((c) => c.subs)
      .filter((x) => x.subject === subject)
      .reduce((n, x) => n + x.msgs, 0),
  );
}

// The queue groups of all subscriptions of the servers: {qgroup or '(none)': count}.
async function queueGroups(servers) {
  const conns = await connections();
  const groups = {};
  for (const c of conns.filter((c) => servers.some((s) => s.cids.has(c.cid)))) {
    for (const x of c.subs) {
      const g = x.qgroup || '(none)';
      groups[g] = (groups[g] ?? 0) + 1;
    }
  }
  return groups;
}

// Waits until the broker's counts for `subject` reach `total` (summed over the servers), up to 5 s.
async function deliveredTotal(servers, subject, before, total) {
  const end = Date.now() + 5000 * slow;
  for (;;) {
    const now = await delivered(servers, subject);
    const got = now.map((n, i) => n - before[i]);
    if (got.reduce((a, b) => a + b, 0) >= total || Date.now() > end) return got;
    await sleep(50);
  }
}

// ---- phases ----------------------------------------------------------------------------------------------

function nestClient() {
  return ClientProxyFactory.create({ transport: Transport.NATS, options: { servers: [url] } });
}

async function queuePhase(client) {
  const servers = await startAll(args.queue);
  const groups = await queueGroups(servers);
  check(
    Object.keys(groups).length === 1 && groups[args.queue] > 0,
    `queue: subscriptions not all in queue group "${args.queue}": ${JSON.stringify(groups)}`,
  );

  // b. 100 requests.
  const N = 100;
  let before = await delivered(servers, CONFORMANCE_SUBJECT);
  const replies = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      lastValueFrom(client.send({ cmd: 'sum' }, [i, 1]).pipe(timeout(10000 * slow), toArray())).catch((e) => e),
    ),
  );
  const wrong = replies.filter((r, i) => !(Array.isArray(r) && r.length === 1 && r[0] === i + 1));
  check(wrong.length === 0, `queue: ${wrong.length} of ${N} requests not answered right, e.g. ${String(wrong[0])}`);
  let split = await deliveredTotal(servers, CONFORMANCE_SUBJECT, before, N);
  console.log(`queue: ${N} requests, delivered per server: ${split.join(' + ')}`);
  check(split.reduce((a, b) => a + b, 0) === N, `queue: the broker delivered ${split.join('+')} requests, not ${N}`);
  check(split.every((n) => n > 0), `queue: a server got none of the ${N} requests: ${split.join(' + ')}`);

  // c. 100 events.
  const run = randomUUID();
  before = await delivered(servers, 'notification');
  for (let i = 0; i < N; i++) await lastValueFrom(client.emit('notification', { run, i }), { defaultValue: undefined });
  split = await deliveredTotal(servers, 'notification', before, N);
  console.log(`queue: ${N} events, delivered per server: ${split.join(' + ')}`);
  check(split.reduce((a, b) => a + b, 0) === N, `queue: the broker delivered ${split.join('+')} events, not ${N}`);
  check(split.every((n) => n > 0), `queue: a server got none of the ${N} events: ${split.join(' + ')}`);

  // The servers' own records: query through the queue until two disjoint snapshots cover all N.
  const snapshots = new Map(); // sorted indices text → {set, count}
  let found = null;
  const end = Date.now() + 10000 * slow;
  while (!found && Date.now() < end) {
    const [v] = await lastValueFrom(client.send({ cmd: 'events' }, 'notification').pipe(timeout(5000 * slow), toArray()));
    const mine = v.payloads.filter((p) => p?.run === run).map((p) => p.i);
    check(v.count === 2 * v.payloads.length, `queue: events count ${v.count} is not twice its ${v.payloads.length} payloads`);
    check(new Set(mine).size === mine.length, `queue: a server recorded an event twice: ${JSON.stringify(mine)}`);
    const key = [...mine].sort((a, b) => a - b).join(',');
    if (mine.length && !snapshots.has(key)) snapshots.set(key, new Set(mine));
    const sets = [...snapshots.values()];
    for (const a of sets) {
      for (const b of sets) {
        if (a !== b && a.size + b.size === N && [...a].every((x) => !b.has(x))) found = [a.size, b.size];
      }
    }
    if (problems.length) break;
  }
  if (check(found, `queue: the events replies never showed two disjoint records covering all ${N} events`)) {
    console.log(`queue: the servers' events records: ${found.join(' + ')} of ${N} (disjoint)`);
  }
  await Promise.all(servers.map(stopServer));
}

async function fanoutPhase(client) {
  const servers = await startAll(null);
  const groups = await queueGroups(servers);
  check(Object.keys(groups).join() === '(none)', `no queue: subscriptions with a queue group: ${JSON.stringify(groups)}`);

  // b. 20 requests: every server gets every one (the Nest client keeps the first reply).
  const N = 20;
  const before = await delivered(servers, CONFORMANCE_SUBJECT);
  const replies = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      lastValueFrom(client.send({ cmd: 'sum' }, [i, 2]).pipe(timeout(10000 * slow), toArray())).catch((e) => e),
    ),
  );
  const wrong = replies.filter((r, i) => !(Array.isArray(r) && r.length === 1 && r[0] === i + 2));
  check(wrong.length === 0, `no queue: ${wrong.length} of ${N} requests not answered right, e.g. ${String(wrong[0])}`);
  const got = await deliveredTotal(servers, CONFORMANCE_SUBJECT, before, N * servers.length);
  console.log(`no queue: ${N} requests, delivered per server: ${got.join(', ')}`);
  check(got.every((n) => n === N), `no queue: not every server got all ${N} requests: ${got.join(', ')}`);

  // c. One event, then every server's record through a hand-made request (all replies on one inbox).
  const payload = { run: randomUUID(), text: 'fan-out ✓' };
  await lastValueFrom(client.emit('notification', payload), { defaultValue: undefined });
  const nc = await connect({ servers: [url] });
  try {
    const shows = (p) =>
      p.response?.count === 2 && p.response.payloads.filter((x) => x?.run === payload.run).length === 1;
    const end = Date.now() + 5000 * slow;
    let packets;
    for (;;) {
      const id = randomUUID();
      const inbox = `_INBOX.${randomUUID().replaceAll('-', '')}`;
      packets = [];
      const sub = nc.subscribe(inbox, {
        callback: (err, m) => {
          if (!err && m.data.length) packets.push(m.json());
        },
      });
      await nc.flush();
      nc.publish('{"cmd":"events"}', JSON.stringify({ pattern: { cmd: 'events' }, data: 'notification', id }), {
        reply: inbox,
      });
      const until = Date.now() + 2000 * slow;
      while (packets.length < servers.length && Date.now() < until) await sleep(20);
      await sleep(200); // room for an unexpected extra reply
      sub.unsubscribe();
      check(packets.every((p) => p.id === id), `no queue: a reply with a foreign id: ${JSON.stringify(packets)}`);
      if (problems.length || (packets.length === servers.length && packets.every(shows)) || Date.now() > end) break;
    }
    check(packets.length === servers.length, `no queue: ${packets.length} replies to one events query, expected ${servers.length}`);
    packets.forEach((p, i) =>
      check(shows(p), `no queue: reply ${i + 1} does not show the event once with count 2: ${JSON.stringify(p)}`),
    );
    if (packets.length === servers.length && packets.every(shows)) {
      console.log(`no queue: all ${servers.length} servers handled the one event`);
    }
  } finally {
    await nc.close();
  }
  await Promise.all(servers.map(stopServer));
}

let client;
try {
  client = nestClient();
  await client.connect();
  await queuePhase(client);
  if (!problems.length) await fanoutPhase(client);
} catch (e) {
  problems.push(e.stack ?? e.message ?? String(e));
} finally {
  await client?.close().catch(() => {});
  await Promise.all(running.map(stopServer));
}

if (problems.length) {
  console.error(`FAIL: ${problems.join('; ')}`);
  for (const s of running) console.error(`--- ${s.name} output (last 2000 chars):\n${s.output.slice(-2000)}`);
  process.exit(1);
}
console.log(`ok: queue group "${args.queue}" split the work between ${kinds.join(' and ')}; without it both got everything`);
