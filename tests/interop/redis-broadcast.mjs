// One event reaches every server subscribed to its channel: Redis pub/sub is a broadcast, not a queue.
//
//   REDIS_URL=redis://127.0.0.1:P node redis-broadcast.mjs --servers nestc,nest   (under with-redis.sh)
//
// --servers: two (or more) conformance servers, each `nest` (nest-server.mjs) or `nestc` ($NESTC_BIN
// conformance, under $NESTC_WRAP if set). They are started here, against the same broker, and stopped by PID.
//
// A NestJS client emits one 'notification' event. Then we ask every server for its `events` record at once:
// a request packet published by hand with ioredis, because a Nest client keeps only the FIRST reply for an
// id, and here each server answers the same id on the shared reply channel '{"cmd":"events"}.reply'. Each
// reply must show the payload (recorded by the first handler) and count 2 (both `notification` handlers).
// Exits 0 when every server did, 1 otherwise.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import Redis from 'ioredis';
import { lastValueFrom } from 'rxjs';
import { scaled } from './timing.mjs';

Logger.overrideLogger(['error', 'warn']);
const { values: args } = parseArgs({
  options: { servers: { type: 'string', default: 'nestc,nest' }, url: { type: 'string' } },
});
const url = args.url ?? process.env.REDIS_URL;
const kinds = args.servers.split(',').filter(Boolean);
if (!url?.startsWith('redis://') || kinds.length < 2 || kinds.some((k) => !['nest', 'nestc'].includes(k))) {
  console.error('usage: REDIS_URL=redis://H:P node redis-broadcast.mjs --servers nestc|nest,nestc|nest[,...]');
  process.exit(2);
}
const servers = []; // every server started, for stopping them whatever happens
const problems = [];
// A readiness wait (it ends at the readiness line): generous, scaled (under valgrind a server needs far longer).
const readyMs = scaled(60000);

// Starts one server and resolves once it printed its readiness line (then it is subscribed).
function startServer(kind, i) {
  let cmd;
  let ready;
  if (kind === 'nest') {
    cmd = [process.execPath, fileURLToPath(new URL('./nest-server.mjs', import.meta.url)), '--url', url];
    ready = /^READY/m;
  } else {
    if (!process.env.NESTC_BIN) throw new Error('nestc servers need NESTC_BIN');
    const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
    cmd = [...wrap, process.env.NESTC_BIN, 'conformance', url];
    ready = /^nestc conformance listening/m;
  }
  const name = `server ${i + 1} (${kind})`;
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { name, kind, child, output: '', exited: null };
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve((s.exited = { code, signal }))));
  s.exitedPromise = exited;
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
    exited.then(({ code, signal }) => (clearTimeout(timer), reject(new Error(`${name} exited (${code ?? signal})`))));
    servers.push(s);
  });
}

// SIGTERM, wait; a nestc server must exit 0 (graceful shutdown, and no sanitizer/valgrind error).
async function stopServer(s) {
  if (!s.exited) {
    s.child.kill('SIGTERM');
    const killer = setTimeout(() => s.child.kill('SIGKILL'), scaled(process.env.NESTC_WRAP ? 10000 : 5000));
    await s.exitedPromise;
    clearTimeout(killer);
  }
  if (s.kind === 'nestc' && s.exited.code !== 0) {
    problems.push(`${s.name} did not exit cleanly: ${JSON.stringify(s.exited)}`);
  }
}

const payload = { run: randomUUID(), text: 'broadcast ✓' };
let sub;
let pub;
try {
  await Promise.all(kinds.map(startServer));
  console.log(`started ${servers.map((s) => s.name).join(', ')} on ${url}`);
  const { hostname: host, port } = new URL(url);

  // The event, from a real NestJS client (its emit completes once PUBLISH was answered).
  const client = ClientProxyFactory.create({ transport: Transport.REDIS, options: { host, port: Number(port) } });
  await lastValueFrom(client.emit('notification', payload), { defaultValue: undefined });
  await client.close();

  sub = new Redis(url);
  pub = new Redis(url);
  const replies = new Map(); // id → [reply packets]
  sub.on('message', (channel, text) => {
    const p = JSON.parse(text);
    if (replies.has(p.id)) replies.get(p.id).push(p);
  });
  await sub.subscribe('{"cmd":"events"}.reply');

  // Ask until every server shows the event (it travels on another connection than our query), or 5 s × factor.
  const shows = (p) =>
    p.response?.count === 2 && p.response.payloads.filter((x) => x?.run === payload.run).length === 1;
  const end = Date.now() + scaled(5000);
  let got;
  for (;;) {
    const id = randomUUID();
    replies.set(id, []);
    const packet = { pattern: { cmd: 'events' }, data: 'notification', id };
    const receivers = await pub.publish('{"cmd":"events"}', JSON.stringify(packet));
    if (receivers !== servers.length) {
      problems.push(`PUBLISH reached ${receivers} subscribers, expected ${servers.length}`);
    }
    const until = Date.now() + scaled(2000);
    while (replies.get(id).length < servers.length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // room for an unexpected extra reply
    got = replies.get(id);
    if (problems.length || (got.length === servers.length && got.every(shows)) || Date.now() > end) break;
  }
  if (got.length !== servers.length) {
    problems.push(`${got.length} replies to the events query, expected ${servers.length}`);
  }
  got.forEach((p, i) => {
    if (!shows(p)) problems.push(`reply ${i + 1} does not show the event once with count 2: ${JSON.stringify(p)}`);
  });
} catch (e) {
  problems.push(e.message);
} finally {
  await Promise.all([sub?.quit(), pub?.quit()].filter(Boolean)).catch(() => {});
  await Promise.all(servers.map(stopServer));
}

if (problems.length) {
  console.error(`FAIL: ${problems.join('; ')}`);
  for (const s of servers) console.error(`--- ${s.name} output (last 2000 chars):\n${s.output.slice(-2000)}`);
  process.exit(1);
}
console.log(`ok: all ${servers.length} servers handled the one event ${JSON.stringify(payload)}`);
