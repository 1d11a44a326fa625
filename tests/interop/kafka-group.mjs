// Kafka: NestJS and nestc members side by side, in one server group and on one reply topic.
//
//   node kafka-group.mjs            (under with-kafka.sh: KAFKA_URL, KAFKA_BROKERS; NESTC_BIN)
//
// Servers: the NestJS conformance service (nest-server.mjs --group G: group G-server, KafkaJS's RoundRobinAssigner
// named `roundrobin`, each join logged as GROUP_JOIN {...}) and `nestc conformance` (?groupId=G: the same group,
// librdkafka's default here, roundrobin; each assignment logged as "group joined as M: N partitions assigned"),
// stopped by PID. The mock cluster elects the first member that joined as the leader, so:
//
//   1. NestJS server A starts, then nestc server B joins: A leads (KafkaJS assigns to librdkafka).
//      Shared group: 20 `context` requests, each with its own record key, from a NestJS client, and 20
//      `user_created` events with their own payloads. Every request answered once with its own key (the reply
//      says who answered: Nest's carries server: 'nest'); the reply topic holds exactly 20 new records (a request
//      handled twice would have left two); `events` asked on each partition of its topic gives each server's
//      record: the 20 payloads split into two disjoint non-empty sets. Both servers answered requests, both
//      hold partitions (their join lines), the group protocol is roundrobin.
//   2. A stops: B alone. One reply topic, two kinds of client: the NestJS client (group <G2>-client,
//      NestReplyPartitionAssigner: alone, it names partition 0) and `nestc send` processes (?groupId=G2: set, not
//      joined; they read every partition of the reply topic and name partition 0) send `sleep` requests with
//      distinct values at the same time, so the replies of both interleave on partition 0 of sleep.reply. Each
//      gets exactly its own answers (the value it sent), none lost; nestc send prints nothing on stderr.
//   3. NestJS server C joins B's group: B leads (librdkafka assigns to KafkaJS). The checks of 1 again.
//   4. B stops: C alone. The checks of 2 against the NestJS server.
//
// Throughout: no server logs an error, KafkaJS logs no warning but its "The group is rebalancing, re-joining",
// nestc servers exit 0. Exits 0 when all of that held, 1 otherwise.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import kafkajs from 'kafkajs';
import { lastValueFrom, timeout, toArray } from 'rxjs';
import { FACTOR, scaled } from './timing.mjs';

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
Logger.overrideLogger(['error', 'warn']);
const url = process.env.KAFKA_URL;
const brokers = process.env.KAFKA_BROKERS?.split(',');
if (!url || !brokers || !process.env.NESTC_BIN) {
  console.error('usage: KAFKA_URL=kafka://H:P,… KAFKA_BROKERS=H:P,… NESTC_BIN=nestc node kafka-group.mjs');
  process.exit(2);
}
const N = 20; // requests and events per shared-group phase
const M = 20; // NestJS client requests per reply-topic phase, at least
const K = 6; // nestc send processes per reply-topic phase
const tag = `${process.pid}-${Date.now()}`;
const serverGroup = `interop-shared-${tag}`; // + '-server' on both sides
const clientGroup = `interop-replies-${tag}`; // + '-client' on both sides
// The mock's settings of nest-server.mjs for nestc (docs/kafka.md "Settings that make it fast"). Offsets are
// committed every 100 ms by default (autoCommitInterval; NESTC_KAFKA_GROUP_QUERY adds URL parameters, by hand):
// the mock refuses the commit a member makes when a rebalance revokes its partitions (REBALANCE_IN_PROGRESS; a
// broker takes it), so what was not committed before is delivered again to the next owner (KafkaJS commits
// after each batch)
const nestcServerUrl =
  `${url}?groupId=${serverGroup}&fromBeginning=true&sessionTimeout=6000&heartbeatInterval=1000` +
  (process.env.NESTC_KAFKA_GROUP_QUERY || '');
const readyMs = scaled(60000);
const answerMs = scaled(20000);
const problems = [];
const check = (ok, what) => {
  if (!ok) problems.push(what);
  return ok;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (what) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}`);

// ---- servers ---------------------------------------------------------------------------------------------

const running = [];

function startServer(kind, name) {
  const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
  const cmd =
    kind === 'nest'
      ? [process.execPath, fileURLToPath(new URL('./nest-server.mjs', import.meta.url)), '--url', url, '--group', serverGroup]
      : [...wrap, process.env.NESTC_BIN, 'conformance', nestcServerUrl];
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { name, kind, child, out: '', err: '', exited: null, waiters: [] };
  s.exitedPromise = new Promise((resolve) => child.on('close', (code, signal) => resolve((s.exited = { code, signal }))));
  const poke = () => (s.waiters = s.waiters.filter((w) => !w()));
  child.stdout.setEncoding('utf8').on('data', (d) => ((s.out += d), poke()));
  child.stderr.setEncoding('utf8').on('data', (d) => ((s.err += d), poke()));
  s.exitedPromise.then(poke);
  running.push(s);
  return s;
}

// Resolves with fn()'s first truthy value, tested whenever the server prints something; fails on its exit or
// after readyMs.
function waitFor(s, what, fn) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${s.name}: ${what} not seen after ${readyMs} ms`)), readyMs);
    const test = () => {
      const v = fn();
      if (v) {
        clearTimeout(timer);
        resolve(v);
        return true;
      }
      if (s.exited) {
        clearTimeout(timer);
        reject(new Error(`${s.name} exited (${JSON.stringify(s.exited)}) before ${what}\n${s.out}${s.err}`));
        return true;
      }
      return false;
    };
    if (!test()) s.waiters.push(test);
  });
}

// The NestJS server's joins: [{memberId, leaderId, isLeader, groupProtocol, partitions}].
const nestJoins = (s) => [...s.out.matchAll(/^GROUP_JOIN (.*)$/gm)].map((m) => JSON.parse(m[1]));
// The nestc server's assignments: [{memberId, partitions}].
const nestcJoins = (s) =>
  [...s.err.matchAll(/group joined as (\S+): (\d+) partitions assigned/g)].map((m) => ({ memberId: m[1], partitions: Number(m[2]) }));
const joinsOf = (s) => (s.kind === 'nest' ? nestJoins(s) : nestcJoins(s));
const nextJoin = (s, after, what) => waitFor(s, what, () => joinsOf(s)[after]);

async function stopServer(s) {
  if (!s.exited) {
    s.child.kill('SIGTERM');
    const killer = setTimeout(() => s.child.kill('SIGKILL'), scaled(process.env.NESTC_WRAP ? 20000 : 10000));
    await s.exitedPromise;
    clearTimeout(killer);
  }
  if (s.kind === 'nestc') check(s.exited.code === 0, `${s.name} did not exit cleanly: ${JSON.stringify(s.exited)}`);
}

// What a server logged that it should not have: errors and warnings, and anything about the group protocol. Not
// counted: KafkaJS's heartbeat errors and warning when a rebalance starts ("The group is rebalancing"), and two
// librdkafka notices about the mock and the test's settings: the mock refusing offset commits while a rebalance
// is under way (COMMITFAIL … Group rebalance in progress: the commit when a revoke starts, and the 100 ms timer's;
// the offsets were committed before, within 100 ms of their records, or are after it) and, for the nestc emit of
// phase 2, kafka.auto.commit.interval.ms reaching the client's producer too (CONFWARN).
function logProblems(s) {
  const lines = `${s.out}\n${s.err}`.split('\n');
  const bad =
    s.kind === 'nest'
      ? lines.filter((l) => /KafkaJS (ERROR|WARN)|ERROR|Error/.test(l) && !/The group is rebalancing/.test(l))
      : lines.filter(
          (l) =>
            /\b(ERROR|WARN)\b/.test(l) &&
            !/COMMITFAIL: .*Offset commit .* failed .*: Broker: Group rebalance in progress/.test(l) &&
            !/CONFWARN: .*auto\.commit\.interval\.ms is a consumer property/.test(l),
        );
  bad.push(...lines.filter((l) => /INCONSISTENT_GROUP_PROTOCOL|Unsupported partition assigner|MemberMetadata/i.test(l)));
  return [...new Set(bad)];
}

// ---- the mock cluster -----------------------------------------------------------------------------------

// A command on the mock's control FIFO; resolves once the mock answered it (its log, with-kafka.sh).
async function mock(command) {
  const log = `${process.env.KAFKA_DIR}/kafka.log`;
  const seen = (readFileSync(log, 'utf8').match(/^(ok|error) .*$/gm) ?? []).length;
  appendFileSync(process.env.KAFKA_CONTROL, `${command}\n`);
  const end = Date.now() + readyMs;
  for (;;) {
    const answers = readFileSync(log, 'utf8').match(/^(ok|error) .*$/gm) ?? [];
    if (answers.length > seen) {
      if (!answers[seen].startsWith('ok ')) throw new Error(`kafka-mock: ${answers[seen]}`);
      return;
    }
    if (Date.now() > end) throw new Error(`kafka-mock: no answer to ${command}`);
    await sleep(10);
  }
}
const BROKERS = brokers.length;
const setRtt = async (ms) => {
  for (let b = 1; b <= BROKERS; b++) await mock(`rtt ${b} ${ms}`);
};

// The mock (librdkafka 2.0.2) ends a rebalance as soon as the leader's SyncGroup has brought every member's
// assignment, and answers a follower's SyncGroup that comes after that with INVALID_REQUEST (a broker gives it
// its assignment): KafkaJS then crashes its consumer, librdkafka joins again. A librdkafka leader asks for
// metadata between its JoinGroup answer and its SyncGroup, a KafkaJS leader too: with every response delayed
// (the mock's rtt) while the second member joins, the follower's SyncGroup, sent at once, comes first. Not more
// than 200 ms, scaled or not: the mock elects a leader 5 s (the session timeout less 1 s) after a member joins,
// and a KafkaJS member already in the group needs several heartbeats (each delayed as much) before it rejoins;
// at 600 ms it missed the election and was dropped.
async function joinWithRtt(ms, joins) {
  await setRtt(ms);
  try {
    return await joins();
  } finally {
    await setRtt(0);
  }
}

// ---- clients ---------------------------------------------------------------------------------------------

const client = ClientProxyFactory.create({
  transport: Transport.KAFKA,
  options: {
    client: { brokers, clientId: 'interop-group', retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 } },
    consumer: { groupId: clientGroup, sessionTimeout: 6000, rebalanceTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 100 },
    subscribe: { fromBeginning: true },
  },
});
for (const route of ['context', 'events', 'sleep']) client.subscribeToResponseOf(route);

const call = (pattern, data) => lastValueFrom(client.send(pattern, data).pipe(timeout(answerMs), toArray()));

const admin = new kafkajs.Kafka({ brokers, clientId: 'interop-group-admin', logLevel: kafkajs.logLevel.NOTHING }).admin();
// Records in a topic so far (every partition's high watermark; nothing is deleted on the mock).
async function records(topic) {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.reduce((n, o) => n + Number(o.high), 0);
}

// `nestc send` as a client of the shared reply topic: {value, stdout, stderr, code} (`nestc emit` with
// command 'emit'). Killed if it outlives its own timeout by far.
function nestcSend(pattern, value, { command = 'send', query = '' } = {}) {
  const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
  const cmd = [...wrap, process.env.NESTC_BIN, command, `${url}?groupId=${clientGroup}${query}`, pattern,
    JSON.stringify(value), '--timeout', String(answerMs)];
  return new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 2 * answerMs);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => (clearTimeout(killer), resolve({ value, stdout, stderr, code: code ?? signal })));
  });
}

// ---- phases ----------------------------------------------------------------------------------------------

// The shared group: requests and events from the NestJS client, each handled by exactly one of the servers.
async function sharedGroup(phase, leader, follower) {
  const before = await records('context.reply');
  const replies = await Promise.all(
    Array.from({ length: N }, (_, i) => call('context', { key: `${phase}${i}`, value: 'who' }).then(
      (r) => r,
      (e) => [{ error: String(e) }],
    )),
  );
  const by = { nest: 0, nestc: 0 };
  for (const [i, r] of replies.entries()) {
    const ok = r.length === 1 && r[0]?.messageKey === `${phase}${i}` && r[0]?.pattern === 'context';
    if (check(ok, `${phase}: context ${i}: ${JSON.stringify(r)}`)) by[r[0].server === 'nest' ? 'nest' : 'nestc']++;
  }
  const written = (await records('context.reply')) - before;
  check(written === N, `${phase}: ${written} reply records for ${N} requests`);
  check(by.nest > 0 && by.nestc > 0, `${phase}: requests not shared: ${JSON.stringify(by)}`);

  for (let i = 0; i < N; i++) await lastValueFrom(client.emit('user_created', { phase, i }));
  // Each server's record of this phase's payloads, asked on every partition of `events` until the two
  // together hold all N (the last answer of each server counts: a record only grows).
  const seen = {};
  const end = Date.now() + answerMs;
  for (;;) {
    const answers = await Promise.all([0, 1, 2, 3].map((partition) => call('events', { value: 'user_created', partition })));
    for (const [a] of answers) seen[a.server === 'nest' ? 'nest' : 'nestc'] = a.payloads.filter((p) => p?.phase === phase).map((p) => p.i);
    const total = Object.values(seen).reduce((n, l) => n + l.length, 0);
    if (total >= N || Date.now() > end) break;
    await sleep(100);
  }
  const all = [...(seen.nest ?? []), ...(seen.nestc ?? [])];
  check(all.length === N && new Set(all).size === N, `${phase}: events handled ${JSON.stringify(seen)}`);
  check(seen.nest?.length > 0 && seen.nestc?.length > 0, `${phase}: events not shared: ${JSON.stringify(seen)}`);
  const lj = joinsOf(leader).at(-1);
  const fj = joinsOf(follower).at(-1);
  say(
    `${phase}: ${leader.name} leads (${lj.partitions} partitions), ${follower.name} follows (${fj.partitions} partitions); ` +
      `requests nest ${by.nest} / nestc ${by.nestc}, events nest ${seen.nest?.length ?? 0} / nestc ${seen.nestc?.length ?? 0}, ` +
      `${written} reply records`,
  );
}

// One reply topic: the NestJS client and nestc send processes at the same time, each value sent once. The nestc
// sends (sleep ~0.5 s each) start together once the NestJS client, which sends one request every 100 ms (sleep 100
// ms and up) for as long as they run, got its first reply, so replies of both kinds are on partition 0 of
// sleep.reply in the same moments. (Started with it, they reached the server first, since a nestc send's first
// call no longer waits for librdkafka's topic scans, held every partition, and no NestJS reply came meanwhile.)
async function sharedReplies(phase, server) {
  const before = await admin.fetchTopicOffsets('sleep.reply');
  const started = Date.now();
  let nestcDone = 0;
  let nestcRuns = null;
  let nestReplied = false;
  const nestRuns = [];
  for (let i = 0; (nestcRuns === null || nestcDone < K || i < M) && i < 150; i++) {
    const v = 100 + 2 * i; // distinct, even: none of the nestc values
    nestRuns.push(call('sleep', v).then((r) => ((nestReplied = true), { v, r, at: Date.now() }),
      (e) => ({ v, r: [String(e)], at: Date.now() })));
    // the nestc sends start once the NestJS client is answered (or after 3 s): the server handles a partition's
    // records in order, so nestc sends that reached it first would hold every partition until they end
    if (nestcRuns === null && (nestReplied || i >= 30)) {
      nestcRuns = Array.from({ length: K }, (_, j) =>
        nestcSend('sleep', 501 + 2 * j).then((r) => (nestcDone++, { ...r, end: Date.now() })),
      );
    }
    await sleep(100);
  }
  const [nestResults, nestcResults] = await Promise.all([Promise.all(nestRuns), Promise.all(nestcRuns)]);
  for (const { v, r } of nestResults) check(r.length === 1 && r[0] === String(v), `${phase}: Nest client sleep ${v}: ${JSON.stringify(r)}`);
  for (const { value, stdout, stderr, code } of nestcResults) {
    check(code === 0 && stdout === `${JSON.stringify(String(value))}\n` && stderr === '',
      `${phase}: nestc send sleep ${value}: exit ${code}, stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}`);
  }
  // every reply on partition 0 (the NestJS client, alone in its group, has the lowest partition, 0; nestc names 0)
  const after = await admin.fetchTopicOffsets('sleep.reply');
  const perPartition = after
    .sort((a, b) => a.partition - b.partition)
    .map((o) => Number(o.high) - Number(before.find((b) => b.partition === o.partition)?.high ?? 0));
  const replies = nestResults.length + K;
  check(perPartition[0] === replies && perPartition.slice(1).every((n) => n === 0),
    `${phase}: sleep.reply records per partition ${JSON.stringify(perPartition)}, expected all ${replies} on partition 0`);
  // NestJS replies that arrived while the nestc sends were waiting for theirs
  const firstEnd = Math.min(...nestcResults.map((r) => r.end));
  const during = nestResults.filter((r) => r.at < firstEnd).length;
  check(during > 0, `${phase}: no NestJS client reply came while the nestc sends waited`);
  // A client whose producer has an event queued before the loop watches it (librdkafka's CONFWARN for a
  // consumer-only property, logged by rd_kafka_new): its delivery report must still be served, and the emit end.
  const emit = await nestcSend('user_created', { phase, emit: true }, { command: 'emit', query: '&kafka.auto.commit.interval.ms=100' });
  check(emit.code === 0, `${phase}: nestc emit with a consumer-only kafka.<property>: exit ${emit.code}, ${emit.stderr}`);
  say(
    `${phase}: ${nestResults.length} NestJS client and ${K} nestc send requests answered by ${server.name} in ` +
      `${Date.now() - started} ms, every reply on partition 0 of sleep.reply, ${during} NestJS replies while ` +
      'all nestc sends waited',
  );
}

let status = 0;
try {
  const connecting = client.connect(); // its group join (3 s) while the server starts
  await admin.connect();
  const A = startServer('nest', 'NestJS server A');
  await waitFor(A, 'its readiness line', () => /^READY/m.test(A.out));
  const [aJoin, bJoin] = await joinWithRtt(200, () => {
    const B = startServer('nestc', 'nestc server B');
    return Promise.all([nextJoin(A, 1, 'its second join'), nextJoin(B, 0, 'its join')]);
  });
  const B = running[1];
  await connecting;
  say(`A joined twice (${JSON.stringify(aJoin)}), B as ${bJoin.memberId}`);
  check(aJoin.isLeader && aJoin.groupProtocol === 'roundrobin', `1: A does not lead with roundrobin: ${JSON.stringify(aJoin)}`);
  check(aJoin.partitions > 0 && bJoin.partitions > 0, `1: a server without partitions: A ${aJoin.partitions}, B ${bJoin.partitions}`);
  const total = aJoin.partitions + bJoin.partitions;
  await sharedGroup('a', A, B);

  await stopServer(A);
  const bAlone = await nextJoin(B, 1, 'its join alone');
  check(bAlone.partitions === total, `2: B alone holds ${bAlone.partitions} of ${total} partitions`);
  await sharedReplies('2', B);

  const [cJoin, bAgain] = await joinWithRtt(200, () => {
    const C = startServer('nest', 'NestJS server C');
    return Promise.all([nextJoin(C, 0, 'its join'), nextJoin(B, 2, 'its third join')]);
  });
  const C = running[2];
  check(!cJoin.isLeader && cJoin.leaderId === bAgain.memberId && cJoin.groupProtocol === 'roundrobin',
    `3: B (${bAgain.memberId}) does not lead with roundrobin: ${JSON.stringify(cJoin)}`);
  check(cJoin.partitions > 0 && bAgain.partitions > 0 && cJoin.partitions + bAgain.partitions === total,
    `3: partitions C ${cJoin.partitions}, B ${bAgain.partitions} of ${total}`);
  await sharedGroup('b', B, C);

  await stopServer(B);
  const cAlone = await nextJoin(C, 1, 'its join alone');
  check(cAlone.partitions === total, `4: C alone holds ${cAlone.partitions} of ${total} partitions`);
  await sharedReplies('4', C);
  await stopServer(C);
  for (const s of running) {
    const bad = logProblems(s);
    check(bad.length === 0, `${s.name} logged:\n  ${bad.join('\n  ')}`);
  }
} catch (e) {
  problems.push(e.stack ?? String(e));
} finally {
  for (const s of running) if (!s.exited) s.child.kill('SIGKILL');
  await Promise.race([Promise.allSettled([client.close(), admin.disconnect()]), sleep(scaled(10000))]);
}
if (problems.length) {
  for (const p of problems) console.error(`FAIL ${p}`);
  for (const s of running) console.error(`--- ${s.name} output:\n${s.out}${s.err}`);
  status = 1;
} else {
  say(`ok (factor ${FACTOR})`);
}
process.exit(status);
