// Turns the measured points (results.json, one JSON line each, written by run.sh) into RESULTS.md:
// a table per scenario with ceiling / nestc / NestJS, the ratios, the target and PASS/MISS, then the
// Redis section (results-redis.json), the NATS section (results-nats.json) and the MQTT sections, QoS 0 and
// QoS 1 (results-mqtt.json), the RabbitMQ sections, noAck true and false (results-rmq.json) and the Kafka section
// (results-kafka.json) and the gRPC section (results-grpc.json), each recorded on its own (its own date and machine
// state), then the machine and the date, then the raw lines.
//
//   node report.mjs --results FILE --out FILE [--redis-results FILE] [--nats-results FILE] [--mqtt-results FILE]
//                   [--rmq-results FILE] [--kafka-results FILE] [--grpc-results FILE]
//                   [--duration S --warmup S --idle-conns N --build DIR]
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    results: { type: 'string' },
    'redis-results': { type: 'string' },
    'nats-results': { type: 'string' },
    'mqtt-results': { type: 'string' },
    'rmq-results': { type: 'string' },
    'kafka-results': { type: 'string' },
    'grpc-results': { type: 'string' },
    out: { type: 'string' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'idle-conns': { type: 'string', default: '' },
    build: { type: 'string', default: '' },
  },
});

const readLines = (file) => (file && existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const lines = readLines(args.results);
const points = lines.map((l) => JSON.parse(l));
const redisLines = readLines(args['redis-results']);
const redisPoints = redisLines.map((l) => JSON.parse(l));
const natsLines = readLines(args['nats-results']);
const natsPoints = natsLines.map((l) => JSON.parse(l));
const mqttLines = readLines(args['mqtt-results']);
const mqttPoints = mqttLines.map((l) => JSON.parse(l));
const rmqLines = readLines(args['rmq-results']);
const rmqPoints = rmqLines.map((l) => JSON.parse(l));
const kafkaLines = readLines(args['kafka-results']);
const kafkaPoints = kafkaLines.map((l) => JSON.parse(l));
const grpcLines = readLines(args['grpc-results']);
const grpcPoints = grpcLines.map((l) => JSON.parse(l));
// The payload figure is request payload bytes per second (nestc bench's own mb_per_s counts every byte
// on the wire, both directions).
for (const p of points) {
  if (p.result && p.payload_bytes) p.result.payload_mb_per_s = (p.result.rps * p.payload_bytes) / 1e6;
}
// With --repeat, a point was measured several times: the report shows the median run by the scenario's
// main figure (a whole run, so that its figures stay consistent with each other).
const KEY = { latency: 'p50_us', events: 'eps' };
const median = (list) => {
  const ok = list.filter((p) => p.result);
  if (!ok.length) return null;
  const key = KEY[ok[0].scenario] ?? 'rps';
  ok.sort((a, b) => a.result[key] - b.result[key]);
  return ok[(ok.length - 1) >> 1];
};
const pick = (scenario, server) => median(points.filter((p) => p.scenario === scenario && p.server === server));
const get = (scenario, server) => pick(scenario, server)?.result ?? null;
const machineInfo = points.find((p) => p.scenario === 'machine')?.result ?? {};
// run.sh waits for the cores to be quiet before each point; these points started without that.
const noisy = points.filter((p) => p.busy_pct_before >= 10);
const exits = points.filter((p) => p.scenario === 'server-exit');
const signalName = (status) => (status > 128 ? ` (signal ${status - 128})` : '');

// ---- formatting ---------------------------------------------------------------------------------------
const num = (v, digits = 0) =>
  v == null || !Number.isFinite(v)
    ? '—'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const us = (v) => (v == null ? '—' : num(v, v < 10 ? 2 : 1));
const ratio = (a, b) => (a == null || b == null || !b ? null : a / b);
const x = (r) => (r == null ? '—' : `${num(r, r < 0.1 ? 3 : r < 10 ? 2 : 1)}×`);
const verdict = (ok) => (ok == null ? 'n/a' : ok ? '**PASS**' : '**MISS**');
const mib = (kib) => (kib == null ? null : kib / 1024);

const summary = []; // [target, measured, verdict]
const sections = [];
const SERVERS = ['ceiling', 'nestc', 'nestjs'];
const NAMES = { ceiling: 'ceiling', nestc: 'nestc', nestjs: 'NestJS' };

// A table of metrics over the three servers. Each metric: [label, select(result) → number, fmt,
// {vs: 'nestjs'|'ceiling', target: text, ok: (nestc, nestjs, ceiling) → bool}?].
function sideBySide(title, what, scenario, metrics) {
  const rs = Object.fromEntries(SERVERS.map((s) => [s, get(scenario, s)]));
  if (SERVERS.every((s) => rs[s] == null) && !points.some((p) => p.scenario === scenario)) return;
  const rows = [
    '| metric | ceiling | nestc | NestJS | nestc / NestJS | nestc / ceiling | target | result |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const [label, select, fmt, t] of metrics) {
    const v = Object.fromEntries(SERVERS.map((s) => [s, rs[s] ? (select(rs[s]) ?? null) : null]));
    const ok =
      t && v.nestc != null && (t.absolute || v[t.vs ?? 'nestjs'] != null) ? t.ok(v.nestc, v.nestjs, v.ceiling) : null;
    rows.push(
      `| ${label} | ${fmt(v.ceiling)} | ${fmt(v.nestc)} | ${fmt(v.nestjs)} | ${x(ratio(v.nestc, v.nestjs))} | ` +
        `${x(ratio(v.nestc, v.ceiling))} | ${t ? t.target : ''} | ${t ? verdict(ok) : ''} |`,
    );
    if (t) summary.push([`${title}: ${label} ${t.target}`, fmt(v.nestc), verdict(ok)]);
  }
  sections.push(`### ${title}\n\n${what}\n\n${rows.join('\n')}\n`);
}

const rps = (r) => r.rps;
const cpu = (r) => r.server_cpu_us_per_resp;
const p50 = (r) => r.p50_us;
const p99 = (r) => r.p99_us;
const fmtRps = (v) => num(v);

sideBySide(
  'Throughput: 1 connection × 100 in flight',
  '`{"cmd":"sum"}` of `[1,2,3]`; 100 requests always outstanding on one connection.',
  'throughput',
  [
    ['server CPU µs / response', cpu, us, { target: '≤ 0.1× NestJS', ok: (n, j) => n <= j / 10 }],
    ['responses / s', rps, fmtRps, { target: '≥ 8× NestJS', ok: (n, j) => n >= 8 * j }],
    ['p50 latency µs', p50, us],
    ['p99 latency µs', p99, us],
  ],
);
sideBySide(
  'Many connections: 1000 connections × 1 in flight',
  '`{"cmd":"sum"}` of `[1,2,3]`; each of 1000 connections sends its next request when the reply arrives.',
  'conns',
  [
    ['responses / s', rps, fmtRps, { target: '≥ 2.5× NestJS', ok: (n, j) => n >= 2.5 * j }],
    ['server CPU µs / response', cpu, us],
    ['p50 latency µs', p50, us],
    ['p99 latency µs', p99, us],
  ],
);
sideBySide(
  'Round trip: 1 connection × 1 in flight',
  'One request at a time: the time from writing the request to reading the whole reply.',
  'latency',
  [
    ['p50 latency µs', p50, us, { vs: 'ceiling', target: '≤ 1.15× ceiling', ok: (n, j, c) => n <= 1.15 * c }],
    ['p99 latency µs', p99, us],
    ['responses / s', rps, fmtRps],
    ['server CPU µs / response', cpu, us],
  ],
);
sideBySide(
  'Events on one core',
  '4 connections, each sending 1000 `{"cmd":"tick"}` events (data `null`) and then one `{"cmd":"ticks"}` ' +
    'request, whose reply proves the events before it were handled; events / s counts only proven events.',
  'events',
  [
    ['events / s', (r) => r.eps, fmtRps, { absolute: true, target: '≥ 2,000,000', ok: (n) => n >= 2e6 }],
    ['server CPU µs / event', cpu, (v) => (v == null ? '—' : num(v, 3))],
  ],
);
sideBySide(
  'Payload: sum of 100,000 numbers',
  '`{"cmd":"sum"}` of `[0, 1, …, 99999]` (588,891 bytes of JSON); 1 connection × 2 in flight. ' +
    'MB/s = 10^6 bytes per second.',
  'payload-sum',
  [
    [
      'request payload MB / s',
      (r) => r.payload_mb_per_s,
      (v) => num(v, 1),
      { target: '≥ 2× NestJS', ok: (n, j) => n >= 2 * j },
    ],
    ['wire MB / s, both directions', (r) => r.mb_per_s, (v) => num(v, 1)],
    ['responses / s', rps, (v) => num(v, 1)],
    ['server CPU µs / response', cpu, us],
  ],
);
sideBySide(
  'Payload: echo of a 1 MiB string',
  '`{"cmd":"echo"}` of a 1,048,576-character ASCII string, sent back whole; 1 connection × 2 in flight.',
  'payload-echo',
  [
    [
      'request payload MB / s',
      (r) => r.payload_mb_per_s,
      (v) => num(v, 1),
      { target: '≥ 2× NestJS', ok: (n, j) => n >= 2 * j },
    ],
    ['wire MB / s, both directions', (r) => r.mb_per_s, (v) => num(v, 1)],
    ['responses / s', rps, (v) => num(v, 1)],
    ['server CPU µs / response', cpu, us],
  ],
);
sideBySide(
  'Memory',
  `VmRSS of the server one second after it started (idle), and the growth with ` +
    `${points.find((p) => p.scenario === 'memory' && p.result)?.result.conns ?? (args['idle-conns'] || 'N')} ` +
    'idle connections open (connected, nothing sent), divided by their number. The anonymous part is the ' +
    "process's own memory (heap, stacks); the rest of RSS is the pages of its executable and shared libraries.",
  'memory',
  [
    [
      'idle RSS MiB',
      (r) => mib(r.idle_rss_kib),
      (v) => num(v, 1),
      { absolute: true, target: '≤ 4 MiB', ok: (n) => n <= 4 },
    ],
    ['idle RSS, anonymous part MiB', (r) => mib(r.idle_anon_kib), (v) => num(v, 2)],
    [
      'KiB per idle connection',
      (r) => (r.rss_kib_with_conns - r.idle_rss_kib) / r.conns,
      (v) => num(v, 2),
      { absolute: true, target: '≤ 2 KiB', ok: (n) => n <= 2 },
    ],
  ],
);

// ---- nestc handlers written with jansson values ------------------------------------------------------
{
  const rows = [
    '| scenario | metric | nestc, payload as text | nestc, jansson values | NestJS | jansson values / NestJS |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  const dom = [
    ['1 × 100 `sum` of `[1,2,3]`', 'throughput', 'dom-throughput', 'server CPU µs / response', cpu, us],
    ['1 × 100 `sum` of `[1,2,3]`', 'throughput', 'dom-throughput', 'responses / s', rps, fmtRps],
    ['sum of 100,000 numbers', 'payload-sum', 'dom-payload-sum', 'request payload MB / s', (r) => r.payload_mb_per_s, (v) => num(v, 1)],
    ['echo of 1 MiB', 'payload-echo', 'dom-payload-echo', 'request payload MB / s', (r) => r.payload_mb_per_s, (v) => num(v, 1)],
  ];
  let any = false;
  for (const [label, base, sc, metric, select, fmt] of dom) {
    const d = get(sc, 'nestc');
    if (!d) continue;
    any = true;
    const t = get(base, 'nestc'), j = get(base, 'nestjs');
    const dv = select(d), tv = t ? select(t) : null, jv = j ? select(j) : null;
    rows.push(`| ${label} | ${metric} | ${fmt(tv)} | ${fmt(dv)} | ${fmt(jv)} | ${x(ratio(dv, jv))} |`);
  }
  if (any)
    sections.push(
      '### nestc handlers written with jansson values\n\n' +
        'The nestc figures above come from handlers that read the payload as text (`nc_msg_data_json` with the ' +
        '`nc_json_reader` pull reader, `nc_reply_json` for the echo). Here the same service written the plainest ' +
        'way, with jansson values (`nc_msg_data`, one allocation per JSON element), against the same NestJS ' +
        'figures.\n\n' +
        rows.join('\n') +
        '\n',
    );
}

// ---- client libraries -----------------------------------------------------------------------------------
{
  const cl = points.filter((p) => p.scenario === 'client');
  if (cl.length) {
    const rows = [
      '| client | server | connections × in flight | responses / s | client CPU µs / response | server CPU µs / response |',
      '| --- | --- | --- | ---: | ---: | ---: |',
    ];
    const groups = new Map();
    for (const p of cl.filter((q) => q.result)) {
      const k = [p.server, p.result.engine, p.result.connections, p.result.inflight].join('/');
      groups.set(k, [...(groups.get(k) ?? []), p]);
    }
    for (const list of groups.values()) {
      const p = median(list);
      const r = p.result;
      const who =
        r.engine === 'nestjs'
          ? 'NestJS ClientProxy (`nest-client.mjs`)'
          : 'nestc client library (`nestc bench --engine client`)';
      rows.push(
        `| ${who} | ${NAMES[p.server]} | ${r.connections} × ${r.inflight} | ${num(r.rps)} | ` +
          `${us(r.client_cpu_us_per_resp)} | ${us(r.server_cpu_us_per_resp)} |`,
      );
    }
    const failed = cl.filter((q) => !q.result).length;
    if (failed) rows.push(`| ${failed} run(s) failed: see the raw results | | | | | |`);
    const best = (engine) =>
      Math.max(
        0,
        ...[...groups.values()]
          .map(median)
          .filter((p) => (p.result.engine === 'nestjs') === (engine === 'nestjs'))
          .map((p) => p.result.rps),
      );
    const nc = best('client');
    const nj = best('nestjs');
    rows.push('');
    rows.push(`| target | nestc client | NestJS client | nestc / NestJS | result |`);
    rows.push('| --- | ---: | ---: | ---: | --- |');
    const ok = nc ? nc >= 1e6 : null;
    rows.push(
      `| one client process drives ≥ 1,000,000 responses / s (best run) | ${num(nc)} | ${num(nj)} | ${x(ratio(nc, nj))} | ${verdict(ok)} |`,
    );
    summary.push(['Client: one nestc client process ≥ 1,000,000 responses / s', num(nc), verdict(ok)]);
    sections.push(
      '### Client libraries\n\nOne client process on core 1 against a server on core 0, `{"cmd":"sum"}` of `[1,2,3]`. ' +
        'Against the ceiling the server is not the limit, so the client shows its own.\n\n' +
        rows.join('\n') +
        '\n',
    );
  }
}

// ---- workers --------------------------------------------------------------------------------------------
{
  const wp = points.filter((p) => p.scenario === 'workers');
  if (wp.length) {
    // One row per (load, workers): the median run of each.
    const groups = new Map();
    for (const p of wp.filter((q) => q.result)) {
      const k = `${p.result.connections} × ${p.result.inflight}`;
      if (!groups.has(k)) groups.set(k, new Map());
      const g = groups.get(k);
      g.set(p.workers, [...(g.get(p.workers) ?? []), p]);
    }
    const rows = [
      '| load (connections × in flight) | workers | server threads | responses / s | server CPU µs / response | CPU / response vs 1 worker | p50 µs | p99 µs |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ];
    const checks = [];
    for (const [load, g] of groups) {
      const byN = [...g.keys()].sort((a, b) => a - b).map((n) => median(g.get(n)));
      const one = byN.find((p) => p.workers === 1);
      for (const p of byN) {
        const r = p.result;
        const growth = one ? ratio(r.server_cpu_us_per_resp, one.result.server_cpu_us_per_resp) : null;
        rows.push(
          `| ${load} | ${p.workers} | ${p.threads ?? '—'} | ${num(r.rps)} | ${us(r.server_cpu_us_per_resp)} | ${x(growth)} | ` +
            `${us(r.p50_us)} | ${us(r.p99_us)} |`,
        );
        if (one && p !== one) checks.push({ load, p, one, growth });
      }
    }
    const failed = wp.filter((q) => !q.result).length;
    if (failed)
      rows.push(
        `| ${failed} run(s) failed (a server that did not start, or a failed run): see the raw results | | | | | | | |`,
      );
    // Flat: with more workers each response costs at most 20 % more CPU, under every load. Without more
    // threads than with one worker, --workers did nothing and there is nothing to judge.
    let ok = checks.length ? true : null;
    let note = '';
    let worst = null;
    for (const c of checks) {
      if (!(c.p.threads > c.one.threads)) {
        ok = null;
        note = ' (no more server threads with more workers: `--workers` not in effect)';
        break;
      }
      worst = Math.max(worst ?? 0, c.growth);
      if (!(c.growth <= 1.2)) ok = false;
    }
    rows.push('');
    rows.push(
      `Target: CPU per response flat as workers grow (≤ 1.2× the 1-worker figure under each load): ${verdict(ok)}${note}`,
    );
    summary.push(['Workers: CPU / response flat as workers grow (≤ 1.2× of 1 worker)', x(worst), verdict(ok)]);
    sections.push(
      '### Several cores: `nestc-server --workers N`\n\n`{"cmd":"sum"}` of `[1,2,3]`, under many connections (a wake-up ' +
        "and two system calls per request dominate) and under a few pipelined ones (the library's own work dominates). " +
        'The server and the load generator share cores 0–1, so responses / s cannot grow much; CPU per response ' +
        'is the figure.\n\n' +
        rows.join('\n') +
        '\n',
    );
  }
}

const pkgVersion = (name) => {
  try {
    return JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
};

// ---- brokers: Redis and NATS ------------------------------------------------------------------------------
// The same service over one broker (redis-server: NestJS's Transport.REDIS and nestc's redis://; nats-server:
// Transport.NATS and nats://), each recorded on its own (results-redis.json, results-nats.json). Every point
// has a server, a client ('nestc': `nestc bench --engine client`, 'nestjs': nest-client.mjs) and the broker's
// CPU time over the window. One function writes both sections; what differs (the broker, the wire, the
// protocol costs) comes from the kind's description.
const redisMachine = redisPoints.find((p) => p.scenario === 'machine')?.result ?? null;
const natsMachine = natsPoints.find((p) => p.scenario === 'machine')?.result ?? null;
const mqttMachine = mqttPoints.find((p) => p.scenario === 'machine')?.result ?? null;
const rmqMachine = rmqPoints.find((p) => p.scenario === 'machine')?.result ?? null;
const kafkaMachine = kafkaPoints.find((p) => p.scenario === 'machine')?.result ?? null;
const FULL = 0.85; // a core this busy over the window is the limit
function brokerSection(kind, allPoints, machine, d) {
  const rp = allPoints.filter((p) => p.scenario !== 'machine');
  if (!rp.length) return '';
  const T = `${kind}-throughput`;
  const L = `${kind}-latency`;
  const E = `${kind}-events`;
  const B = d.broker;
  const CLIENTS = { nestc: 'nestc client', nestjs: 'NestJS client' };
  const LOADS = { [T]: '1 × 100', [L]: '1 × 1', [E]: '4 × (1000 events + 1)' };
  const RKEY = { [L]: 'p50_us', [E]: 'eps' };
  const rmedian = (list) => {
    const ok = list.filter((p) => p.result);
    if (!ok.length) return null;
    // Kafka's events are counted on the server (handled_eps), the others' by the client (eps).
    const key = ok[0].result.handled_eps != null ? 'handled_eps' : (RKEY[ok[0].scenario] ?? 'rps');
    ok.sort((a, b) => a.result[key] - b.result[key]);
    return ok[(ok.length - 1) >> 1];
  };
  // One normalised row per (scenario, server, client): the median run.
  const rget = (scenario, server, client) => {
    const p = rmedian(rp.filter((q) => q.scenario === scenario && q.server === server && q.client === client));
    if (!p) return null;
    const r = p.result;
    if (r.handled_eps != null) {
      // Kafka events (run.sh kafka_events): handled events counted on the server between two readings of its
      // counter; the server's and the broker's CPU over the same span; the client's from nestc bench's window.
      const load = r.load ?? {};
      return {
        rps: load.rps ?? null,
        eps: r.handled_eps,
        sentEps: load.eps ?? null,
        p50: null,
        p99: null,
        srvUs: r.server_cpu_us_per_event,
        cliUs: load.client_cpu_s != null && load.events ? (load.client_cpu_s * 1e6) / load.events : null,
        brkUs: r.broker_cpu_us_per_event,
        srv: r.server_cpu_s / r.handled_s,
        cli: load.client_cpu_s != null && load.duration_s ? load.client_cpu_s / load.duration_s : null,
        brk: r.broker_cpu_s / r.handled_s,
        errors: load.errors ?? 0,
      };
    }
    const work = r.requests + (r.events ?? 0);
    const brokerS = p.broker_cpu_s ?? r.broker_cpu_s ?? null;
    const dur = r.duration_s;
    return {
      rps: r.rps,
      eps: r.eps ?? null,
      p50: r.p50_us ?? null,
      p99: r.p99_us ?? null,
      srvUs: r.server_cpu_us_per_resp ?? null,
      cliUs: r.client_cpu_us_per_resp ?? null,
      brkUs: brokerS != null && work ? (brokerS * 1e6) / work : null,
      // Shares of one core over the window: the server alone on core 0; the client and the broker on core 1.
      srv: r.server_cpu_s != null ? r.server_cpu_s / dur : null,
      cli: r.client_cpu_s != null ? r.client_cpu_s / dur : null,
      brk: brokerS != null ? brokerS / dur : null,
      errors: r.errors,
    };
  };
  const pct = (v) => (v == null ? '—' : `${num(100 * v)} %`);
  // What limited a point, from how busy each core was over its window.
  const bound = (v, sc) => {
    if (!v) return '—';
    if (v.srv != null && v.srv >= FULL) return 'the server (core 0 full)';
    if (v.brk != null && v.brk >= FULL) return d.brokerFull;
    if (v.cli != null && v.brk != null && v.cli + v.brk >= FULL)
      return `core 1 full (${v.cli >= v.brk ? 'mostly the client' : `mostly ${B}`})`;
    if (sc === L) return 'the round trip (one request at a time; no core full)';
    return 'no core full: the hops (too few in flight to fill core 1)';
  };
  const fmtEps = (v) => num(v);

  // All points, absolute.
  const all = [
    '| load | server | client | responses / s | p50 µs | p99 µs | server CPU µs / resp | client CPU µs / resp | ' +
      `${B} CPU µs / resp | core 0: server busy | core 1: client + ${B} busy | bound by |`,
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const sc of [T, L])
    for (const server of ['nestc', 'nestjs'])
      for (const client of ['nestc', 'nestjs']) {
        const v = rget(sc, server, client);
        if (!v) continue;
        all.push(
          `| ${LOADS[sc]} | ${NAMES[server]} | ${CLIENTS[client]} | ${num(v.rps)} | ${us(v.p50)} | ${us(v.p99)} | ` +
            `${us(v.srvUs)} | ${us(v.cliUs)} | ${us(v.brkUs)} | ${pct(v.srv)} | ${pct(v.cli)} + ${pct(v.brk)} | ${bound(v, sc)} |`,
        );
      }

  // Ratio tables: metric rows, two columns and their ratio.
  const ratioTable = (head, groups) => {
    const rows = [`| load | ${head[0]} | metric | ${head[1]} | ${head[2]} | nestc / NestJS |`, '| --- | --- | --- | ---: | ---: | ---: |'];
    for (const [load, label, a, b, metrics] of groups) {
      if (!a && !b) continue;
      for (const [name, sel, fmt] of metrics) {
        const va = a ? sel(a) : null;
        const vb = b ? sel(b) : null;
        rows.push(`| ${load} | ${label} | ${name} | ${fmt(va)} | ${fmt(vb)} | ${x(ratio(va, vb))} |`);
      }
    }
    return rows.join('\n');
  };
  const serverGroups = [];
  const clientGroups = [];
  for (const sc of [T, L]) {
    for (const client of ['nestc', 'nestjs'])
      serverGroups.push([
        LOADS[sc],
        CLIENTS[client],
        rget(sc, 'nestc', client),
        rget(sc, 'nestjs', client),
        [
          ['responses / s', (v) => v.rps, fmtRps],
          ['p50 latency µs', (v) => v.p50, us],
          ['server CPU µs / response', (v) => v.srvUs, us],
        ],
      ]);
    for (const server of ['nestc', 'nestjs'])
      clientGroups.push([
        LOADS[sc],
        `${NAMES[server]} server`,
        rget(sc, server, 'nestc'),
        rget(sc, server, 'nestjs'),
        [
          ['responses / s', (v) => v.rps, fmtRps],
          ['p50 latency µs', (v) => v.p50, us],
          ['client CPU µs / response', (v) => v.cliUs, us],
        ],
      ]);
  }

  // Events.
  const ev = { nestc: rget(E, 'nestc', 'nestc'), nestjs: rget(E, 'nestjs', 'nestc') };
  let events = '';
  if (ev.nestc || ev.nestjs) {
    const erows = ['| metric | nestc | NestJS | nestc / NestJS |', '| --- | ---: | ---: | ---: |'];
    for (const [name, sel, fmt] of [
      ['events / s', (v) => v.eps, fmtEps],
      ['server CPU µs / event', (v) => v.srvUs, (v) => (v == null ? '—' : num(v, 3))],
      [`${B} CPU µs / event`, (v) => v.brkUs, (v) => (v == null ? '—' : num(v, 3))],
    ]) {
      const a = ev.nestc ? sel(ev.nestc) : null;
      const b = ev.nestjs ? sel(ev.nestjs) : null;
      erows.push(`| ${name} | ${fmt(a)} | ${fmt(b)} | ${x(ratio(a, b))} |`);
    }
    erows.push(
      `| core 0: server busy · core 1: client + ${B} busy | ${ev.nestc ? `${pct(ev.nestc.srv)} · ${pct(ev.nestc.cli)} + ${pct(ev.nestc.brk)}` : '—'} | ` +
        `${ev.nestjs ? `${pct(ev.nestjs.srv)} · ${pct(ev.nestjs.cli)} + ${pct(ev.nestjs.brk)}` : '—'} | |`,
    );
    erows.push(`| bound by | ${bound(ev.nestc, E)} | ${bound(ev.nestjs, E)} | |`);
    events =
      `#### Events over ${d.name}\n\n` +
      (d.eventsText ??
        `4 nestc clients (\`nestc bench --engine client\`), each publishing 1000 \`{"cmd":"tick"}\` events ` +
      `(data \`null\`) and then one \`{"cmd":"ticks"}\` request, repeatedly. ${d.eventOrder} ` +
      'and the server handles them in order, so the ' +
      'reply proves the events before it; events / s counts only proven events. Server and ' +
      `${B} CPU are divided ` +
      'by events + requests.') +
      '\n\n' +
      erows.join('\n') +
      '\n\n';
  }

  // What bounds each figure, from the points themselves.
  const notes = [];
  const tp = (server, client) => rget(T, server, client);
  const tnn = tp('nestc', 'nestc');
  const tjn = tp('nestjs', 'nestc');
  if (tnn && tjn)
    notes.push(
      `- **1 × 100, nestc client** — against the nestc server the limit is ${bound(tnn, T)} ` +
        `(server ${pct(tnn.srv)}, client ${pct(tnn.cli)}, ${B} ${pct(tnn.brk)} of a core); against NestJS it is ` +
        `${bound(tjn, T)} (server ${pct(tjn.srv)}). ` +
        (tnn.srv < FULL
          ? 'The nestc server is not the bottleneck here, so the responses / s ratio understates it: ' +
            'compare **server CPU per response** for the servers.'
          : 'Both servers are the limit: responses / s and CPU per response both compare the servers.'),
    );
  const tnj = tp('nestc', 'nestjs');
  const tjj = tp('nestjs', 'nestjs');
  if (tnj && tjj)
    notes.push(
      `- **1 × 100, NestJS client** — against the nestc server: ${bound(tnj, T)} (client ${pct(tnj.cli)}, ${B} ` +
        `${pct(tnj.brk)}, server ${pct(tnj.srv)}); against NestJS: ${bound(tjj, T)} (server ${pct(tjj.srv)}, client ` +
        `${pct(tjj.cli)}, ${B} ${pct(tjj.brk)}).` +
        (tnn && tnj.rps < tnn.rps
          ? ` The NestJS client drives ${x(ratio(tnj.rps, tnn.rps))} the load the nestc client drives against the same ` +
            'server, so it compares the servers at a lower rate, where the responses / s ratio says little.'
          : ''),
    );
  const lnn = rget(L, 'nestc', 'nestc');
  const tcpWake = get('latency', 'ceiling')?.server_cpu_us_per_resp;
  if (lnn)
    notes.push(
      `- **1 × 1** — ${bound(lnn, L)} (nestc server ${pct(lnn.srv)}, ${B} ${pct(lnn.brk)}): the figures are round ` +
        `trips. ${d.roundTrip} Server CPU per response at 1 × 1 is mostly the cost of waking up for every message (no batching)` +
        (tcpWake != null
          ? `: over TCP even the bare ceiling server spends ${us(tcpWake)} µs per response at 1 × 1 (Round trip table above).`
          : '.'),
    );
  if (ev.nestc && ev.nestjs)
    notes.push(
      `- **events** — nestc server: ${bound(ev.nestc, E)}; NestJS server: ${bound(ev.nestjs, E)}.` +
        (ev.nestc.srv < FULL
          ? ' The nestc server is not the limit, so the events / s ratio understates it: compare server CPU per event.'
          : ''),
    );
  const failed = rp.filter((q) => !q.result).length;
  const errs = rp.filter((q) => q.result?.errors).length;
  const rnoisy = rp.filter((q) => q.busy_pct_before >= 10).length;
  const rm = machine ?? {};
  return (
    `## ${d.name} transport\n\n` +
    d.intro(rm) +
    'CPU per ' +
    'response is each process\'s user + system time over the counting window (all threads) divided by the responses ' +
    `in the window; ${B}'s is read from \`/proc/<pid>/stat\` at the window's edges. A core counts as full ` +
    `at ${FULL * 100} % busy. For responses / s higher is better; for latency and CPU lower is better.` +
    (rm.date
      ? ` Recorded ${rm.date}${rm.repeat > 1 ? `, each point ${rm.repeat} times (the tables show the median run)` : ''}` +
        `; ${rm.warmup_s ?? args.warmup} s warm-up and ${rm.duration_s ?? args.duration} s counted per point, after 3 s of ` +
        `untimed load per server; the machine was ${rm.busy_pct_before ?? '?'} % busy before the run (load average ` +
        `${rm.loadavg_before ?? '?'}).`
      : '') +
    (rnoisy ? `\n\n**Warning:** ${rnoisy} ${d.name} point(s) started while the machine was busy with other work.` : '') +
    (failed ? `\n\n**Warning:** ${failed} ${d.name} run(s) failed (see the raw results).` : '') +
    (errs ? `\n\n**Warning:** ${errs} ${d.name} run(s) counted request errors (see the raw results).` : '') +
    '\n\n#### All points\n\n' +
    all.join('\n') +
    '\n\n#### Servers: the same client, nestc server / NestJS server\n\n' +
    ratioTable(['client', 'nestc server', 'NestJS server'], serverGroups) +
    '\n\n#### Clients: the same server, nestc client / NestJS client\n\n' +
    ratioTable(['server', 'nestc client', 'NestJS client'], clientGroups) +
    '\n\n' +
    events +
    '#### What bounds each figure\n\n' +
    notes.join('\n') +
    `\n- With a broker in the middle, responses / s is the slowest of three processes (client, ${B}, server), ` +
    'two of them sharing core 1; **server CPU per response** does not depend on the others\' speed and is the ' +
    'fairest comparison of the servers, **client CPU per response** that of the clients.' +
    (d.extraNotes ? `\n${d.extraNotes}` : '') +
    '\n\n'
  );
}

const redisMd = brokerSection('redis', redisPoints, redisMachine, {
  name: 'Redis',
  broker: 'redis-server',
  brokerFull: 'redis-server (its one thread full)',
  intro: (rm) =>
    'The same service over one Redis broker: the nestc server (`nestc-server --url redis://…`) and NestJS\'s ' +
    '`Transport.REDIS` server (`nest-server.mjs --url redis://…`, ioredis), each alone on core 0; one ' +
    `redis-server ${rm.redis_version ?? ''} (\`--save '' --appendonly no\`, loopback) pinned to core 1 together with ` +
    'the load generator, so that the server under test has core 0 to itself as in the TCP scenarios. Each ' +
    'request crosses Redis twice: the client PUBLISHes on `{"cmd":"sum"}`, Redis delivers it to the server\'s ' +
    'subscription, the server PUBLISHes the reply on `{"cmd":"sum"}.reply`, Redis delivers it to the client. Two ' +
    'clients drive each server: **nestc client** = the nestc client library (`nestc bench --engine client`), ' +
    '**NestJS client** = NestJS\'s `ClientRedis` (`nest-client.mjs --url redis://…`); each is one client (two Redis ' +
    'connections: publish and subscribe) with 100 or 1 requests in flight, `{"cmd":"sum"}` of `[1,2,3]`. ',
  eventOrder: 'A client publishes its events and its request on one connection, Redis delivers them to the server in that order,',
  roundTrip:
    'Both clients follow NestJS\'s protocol: the reply channel\'s subscription is counted per pattern, so with ' +
    'one request at a time every request is SUBSCRIBE `{"cmd":"sum"}.reply` → wait for the confirmation → PUBLISH → ' +
    'the reply → UNSUBSCRIBE, two round trips through Redis plus the server\'s publish, and Redis does the ' +
    '(un)subscription work for every request (its CPU per response is much higher than at 1 × 100).',
});

const natsMd = brokerSection('nats', natsPoints, natsMachine, {
  name: 'NATS',
  broker: 'nats-server',
  brokerFull: 'nats-server (core 1 full by itself)',
  intro: (rm) =>
    'The same service over one NATS server: the nestc server (`nestc-server --url nats://…`, nestc\'s own NATS ' +
    'protocol implementation) and NestJS\'s `Transport.NATS` server (`nest-server.mjs --url nats://…`, ' +
    `@nats-io/transport-node ${pkgVersion('@nats-io/transport-node')}), each alone on core 0; one nats-server ` +
    `${rm.nats_version ?? ''} (\`nats-server -a 127.0.0.1 -p P\`, loopback, no persistence) pinned to core 1 together ` +
    'with the load generator (the Go runtime follows the CPU affinity: one thread runs at a time), so that the ' +
    'server under test has core 0 to itself as in the TCP scenarios. Each request crosses nats-server twice: the ' +
    'client subscribes a fresh inbox `_INBOX.…` and publishes on `{"cmd":"sum"}` with that inbox as reply subject, ' +
    'nats-server delivers it to the server\'s subscription, the server publishes the reply to the inbox, nats-server ' +
    'delivers it to the client, which unsubscribes the inbox. Two clients drive each server: **nestc client** = the ' +
    'nestc client library (`nestc bench --engine client`), **NestJS client** = NestJS\'s `ClientNats` ' +
    '(`nest-client.mjs --url nats://…`); each is one client (one NATS connection) with 100 or 1 requests in flight, ' +
    '`{"cmd":"sum"}` of `[1,2,3]`. ',
  eventOrder:
    'A client publishes its events and its request on one connection, nats-server delivers a publisher\'s messages ' +
    'to a subscribing connection in the order they were published,',
  roundTrip:
    'Both clients follow NestJS\'s protocol: every request gets its own inbox, so each request is SUB inbox + PUB ' +
    '(written together: NATS does not confirm a SUB, and nats-server handles a connection\'s commands in order) → ' +
    'the reply → UNSUB: one round trip through nats-server plus the server\'s publish, and nats-server does the ' +
    '(un)subscription work for every request, at 1 × 100 as at 1 × 1.',
});

// MQTT: one file, two sections (QoS 0: points mqtt-*; QoS 1: points mqtt-qos1-*), each with its own points.
const mqttQos1 = mqttPoints.filter((p) => p.scenario.startsWith('mqtt-qos1-'));
const mqttQos0 = mqttPoints.filter((p) => !p.scenario.startsWith('mqtt-qos1-'));
const mqttIntro = (qos) => (rm) =>
  'The same service over one MQTT broker: the nestc server (`nestc-server --url mqtt://…' +
  (qos ? '?qos=1' : '') +
  '`, nestc\'s own MQTT 3.1.1 client) and NestJS\'s `Transport.MQTT` server (`nest-server.mjs --url mqtt://…' +
  (qos ? '?qos=1' : '') +
  `\`, mqtt.js ${pkgVersion('mqtt')}), each alone on core 0; one mosquitto ${rm.mosquitto_version ?? ''} ` +
  '(loopback, no persistence, anonymous, `max_queued_messages 0` so that bursts of events are not dropped, ' +
  '`set_tcp_nodelay true` as redis-server and nats-server do by default) pinned ' +
  'to core 1 together with the load generator (mosquitto is single-threaded), so that the server under test has ' +
  'core 0 to itself as in the TCP scenarios. Each request crosses mosquitto twice: the client subscribes ' +
  '`{"cmd":"sum"}/reply` and publishes on `{"cmd":"sum"}`, mosquitto delivers it to the server\'s subscription, ' +
  'the server publishes the reply on `{"cmd":"sum"}/reply` (QoS 0), mosquitto delivers it to the client. ' +
  (qos
    ? '**QoS 1**: the servers subscribe at QoS 1 (nestc: `?qos=1`; NestJS: `subscribeOptions: { qos: 1 }`) and the ' +
      'clients publish requests and events at QoS 1 (nestc: `?qos=1`; NestJS: an `MqttRecord` with `setQoS(1)` per ' +
      'request), so mosquitto acknowledges every request (PUBACK) and the server acknowledges every delivery; ' +
      'mosquitto keeps at most 20 unacknowledged QoS 1 messages in flight to a client (its default). '
    : '**QoS 0** (NestJS\'s default: no subscription or publish options). ') +
  'Two clients drive each server: **nestc client** = the nestc client library (`nestc bench --engine client`), ' +
  '**NestJS client** = NestJS\'s `ClientMqtt` (`nest-client.mjs --url mqtt://…' +
  (qos ? '?qos=1' : '') +
  '`); each is one client (one MQTT connection) with 100 or 1 requests in flight, `{"cmd":"sum"}` of `[1,2,3]`. ';
const mqttCommon = {
  broker: 'mosquitto',
  brokerFull: 'mosquitto (its one thread full)',
  eventOrder:
    'A client publishes its events and its request on one connection, mosquitto delivers one publisher\'s messages ' +
    'to a subscribing connection in the order they were published,',
  roundTrip:
    'Both clients follow NestJS\'s protocol: the reply topic\'s subscription is counted per pattern, so with one ' +
    'request at a time every request is SUBSCRIBE `{"cmd":"sum"}/reply` → wait for the SUBACK → PUBLISH → the reply ' +
    '→ UNSUBSCRIBE, two round trips through mosquitto plus the server\'s publish, and mosquitto does the ' +
    '(un)subscription work for every request.',
};
const mqttMd =
  brokerSection('mqtt', mqttQos0, mqttMachine, { ...mqttCommon, name: 'MQTT', intro: mqttIntro(0) }) +
  brokerSection('mqtt-qos1', mqttQos1, mqttMachine, {
    ...mqttCommon,
    name: 'MQTT QoS 1',
    intro: mqttIntro(1),
    extraNotes:
      '- **NestJS server, 1 × 1** — mqtt.js does not set `TCP_NODELAY` (Node.js sockets have Nagle\'s algorithm on): ' +
      'the NestJS server writes a request\'s PUBACK and then its reply, Nagle holds the reply until mosquitto ' +
      'acknowledges the PUBACK, and mosquitto\'s delayed ACK puts that off by 40 ms, so its round trips take about ' +
      '44 ms whichever client sends. That is `Transport.MQTT` as it comes; nestc\'s connections set `TCP_NODELAY`.',
  });

// RabbitMQ: one file, two sections (noAck true: points rmq-*; noAck false: points rmq-ack-*).
const rmqAckPoints = rmqPoints.filter((p) => p.scenario.startsWith('rmq-ack-'));
const rmqNoAckPoints = rmqPoints.filter((p) => !p.scenario.startsWith('rmq-ack-'));
const rmqIntro = (ack) => (rm) =>
  'The same service over one RabbitMQ broker: the nestc server (`nestc-server --url amqp://…?queue=bench' +
  (ack ? '&noAck=false' : '') +
  '`, nestc\'s own AMQP 0-9-1 codec and transport) and NestJS\'s `Transport.RMQ` server (`nest-server.mjs --url ' +
  `amqp://…?queue=bench${ack ? '&noAck=false' : ''}\`, amqplib ${pkgVersion('amqplib')} with amqp-connection-manager ` +
  `${pkgVersion('amqp-connection-manager')}), each alone on core 0; one rabbitmq-server ${rm.rabbitmq_version ?? ''} ` +
  `(Erlang/OTP ${rm.erlang_version ?? '?'}; started as the test suite starts its shared broker: loopback, its own ` +
  'epmd, a fresh directory, no plugins) pinned to core 1 together with the load generator, so that the server ' +
  'under test has core 0 to itself as in the TCP scenarios. Both servers declare the queue `bench` with NestJS\'s ' +
  'default queue options (durable, not exclusive, not auto-deleted, no arguments; nestc\'s defaults are the same). ' +
  'Each request crosses the broker twice: the client publishes to the default exchange with routing key `bench`, ' +
  '`replyTo` the direct reply-to pseudo-queue and a `correlationId`; the broker delivers it to the server\'s ' +
  'consumer; the server publishes the reply to the `replyTo`, and the broker hands it to the client\'s reply ' +
  'consumer. ' +
  (ack
    ? '**noAck false**: the servers consume in ack mode (prefetch unlimited): nestc acknowledges a request when ' +
      'its reply is sent and an event when its handler returned (automatically), NestJS\'s handlers acknowledge by ' +
      'hand as NestJS users do (`ctx.getChannelRef().ack(ctx.getMessage())`); the broker keeps every message ' +
      'until its `basic.ack`. '
    : '**noAck true** (NestJS\'s default: the broker considers a message acknowledged once delivered). ') +
  'Two clients drive each server: **nestc client** = the nestc client library (`nestc bench amqp://…?queue=bench ' +
  '--engine client`), **NestJS client** = NestJS\'s `ClientRMQ` (`nest-client.mjs --url amqp://…?queue=bench`); ' +
  'each is one client (one AMQP connection, one channel in confirm mode) with 100 or 1 requests in flight, ' +
  '`{"cmd":"sum"}` of `[1,2,3]`. ';
const rmqCommon = {
  broker: 'rabbitmq-server',
  brokerFull: 'rabbitmq-server (core 1 full by itself)',
  eventOrder:
    'A client publishes its events and its request on one channel to the queue, and the queue delivers them to ' +
    'its one consumer in that order,',
  roundTrip:
    'No subscription work per request (unlike Redis, NATS and MQTT): the reply consumer on the direct reply-to ' +
    'pseudo-queue is set up once per client, so 1 × 1 is one publish through the broker each way plus the server\'s ' +
    'handling.',
};
// A run on a machine busy with other work: the cores were shared with processes the report does not see, so
// "no core full" does not mean nothing was full.
const rmqBusyNote =
  (rmqMachine?.busy_pct_before ?? 0) >= 10
    ? '- **This run shared the machine with other work** (' +
      `${rmqMachine.busy_pct_before} % busy, load average ${rmqMachine.loadavg_before} at the start, and most points ` +
      'started busy): the "bound by" column sees only the three processes measured, so where it says no core was ' +
      'full the rest of the cores went to other processes. Responses / s, latencies and events / s vary several-fold ' +
      'between the three runs of a point and say little here; **CPU per response and per event** (each process\'s own ' +
      'time, divided by its own work) are the figures to compare, and even they are inflated by the contention ' +
      '(wake-ups on a busy core, context switches, cold caches), most at 1 × 1, where every message is a wake-up.\n'
    : '';
// Kafka: librdkafka's mock cluster (kafka-mock), string routes with a prefix per server, events counted on the server.
// Idle (run.sh kafka_idle): each server's and kafka-mock's share of a core with no load, after the warm-up.
const kafkaIdle = (server) => {
  const r = kafkaPoints.find((q) => q.scenario === 'kafka-idle' && q.server === server)?.result;
  return r ? { srv: r.server_cpu_s / r.duration_s, brk: r.broker_cpu_s / r.duration_s } : null;
};
const kafkaIdleNote = (() => {
  const a = kafkaIdle('nestc');
  const b = kafkaIdle('nestjs');
  if (!a && !b) return '';
  const pc = (v) => `${num(100 * v, 1)} %`;
  const one = (name, v) => (v ? `the ${name} server ${pc(v.srv)} of a core (kafka-mock ${pc(v.brk)} meanwhile)` : '');
  return (
    '- **Idle** (no load, one counting window after the warm-up): ' +
    [one('nestc', a), one('NestJS', b)].filter(Boolean).join(', ') +
    ': what a consumer costs while every fetch comes back empty after 10 ms, plus the group\'s heartbeats. It is ' +
    'in every CPU-per-message figure and dominates at 1 × 1, where a few dozen responses a second share it ' +
    '(1 % of a core over 50 responses / s is 200 µs per response).\n'
  );
})();
// What limits each side, from the median runs and the idle readings.
const kafkaLimitsNote = (() => {
  const med = (sc, server, client) => {
    const l = kafkaPoints
      .filter((p) => p.scenario === sc && p.server === server && p.client === client && p.result)
      .sort((a, b) => (a.result.rps ?? a.result.handled_eps) - (b.result.rps ?? b.result.handled_eps));
    return l.length ? l[(l.length - 1) >> 1].result : null;
  };
  const pc = (v) => (v == null ? '?' : `${num(100 * v)} %`);
  const busy = (r) => (r ? r.server_cpu_s / r.duration_s : null);
  const nn = med('kafka-throughput', 'nestc', 'nestc');
  const jn = med('kafka-throughput', 'nestjs', 'nestc');
  const nj = med('kafka-throughput', 'nestc', 'nestjs');
  const ev = med('kafka-events', 'nestjs', 'nestc');
  const evn = kafkaPoints.filter((p) => p.scenario === 'kafka-events' && p.server === 'nestc' && p.result);
  // The spread of a server's events runs (the machine's load moves them most).
  const evRange = (server) => {
    const v = kafkaPoints
      .filter((p) => p.scenario === 'kafka-events' && p.server === server && p.result)
      .map((p) => p.result.handled_eps)
      .sort((a, b) => a - b);
    return v.length ? (v.length > 1 ? `${num(v[0])} to ${num(v[v.length - 1])}` : num(v[0])) : '—';
  };
  const stalled = evn.map((p) => p.result.load?.errors ?? 0);
  const out = [];
  const nnj = med('kafka-throughput', 'nestjs', 'nestjs');
  if (nn && jn)
    out.push(
      '- **What limits each side: one producer batch per partition per fetch.** No process fills its core (at 1 × 100 ' +
        `with the nestc client: the nestc server ${pc(busy(nn))} of core 0, the NestJS server ${pc(busy(jn))}). Besides ` +
        'the fetch wait, the mock returns **one message set per partition per fetch** (librdkafka\'s ' +
        '`rdkafka_mock_handlers.c`, its Fetch handler: "FIXME: Multiple messageSets ?"), where a Kafka broker returns ' +
        'as many as fit. A producer that puts the records waiting for a partition into one Produce request — ' +
        'librdkafka, so the nestc client and server — has them fetched together; one that sends every record as its ' +
        'own Produce request has one record per partition fetched per round trip: NestJS produces every reply with ' +
        'its own `producer.send`, and `ClientKafka` every request. Replies come back on one partition (nestc\'s client ' +
        'names partition 0, `ClientKafka` the one its group assigned it), so the NestJS server\'s replies reach a ' +
        'client one per fetch round trip, and the NestJS client\'s requests reach a server at most four per round ' +
        `trip (one per partition): that, not CPU, holds the NestJS server at ${num(jn.rps)} responses / s (p50 ` +
        `${num(jn.p50_us / 1000)} ms with 100 in flight)` +
        (nj ? ` and the NestJS client at ${num(nj.rps)} against the nestc server` : '') +
        (nnj ? ` (${num(nnj.rps)} when both are NestJS)` : '') +
        '. It also weighs on NestJS\'s CPU per response: every fetch round trip costs CPU whether it brings one ' +
        `record or a hundred, and its consumer costs ${pc(kafkaIdle('nestjs')?.srv)} of a core even idle (above). ` +
        'With a Kafka broker the ' +
        'NestJS figures would be better than here; the nestc ones are not held back by this. ' +
        (ev
          ? 'The events, which nestc clients produce in batches, escape this: they reach the NestJS server at ' +
            `${num(ev.handled_eps)} / s (runs: ${evRange('nestjs')}) with its core ` +
            `${pc(ev.server_cpu_s / ev.handled_s)} busy` +
            (ev.server_cpu_s / ev.handled_s >= 0.6
              ? ', so there its own CPU is the limit, the contention on the machine with it.'
              : ': it waits more than it computes; where KafkaJS waits there was not traced.')
          : ''),
    );
  if (nj)
    out.push(
      `- **What limits the NestJS client.** Against the nestc server it used ${pc(nj.client_cpu_s / nj.duration_s)} of ` +
        `core 1 for ${num(nj.rps)} responses / s (${us(nj.client_cpu_us_per_resp)} µs each): KafkaJS's producer (one ` +
        'Produce request per `send`) and its consumer\'s fetch loop, which at a 10 ms wait costs ' +
        `${pc(kafkaIdle('nestjs')?.srv)} of a core with nothing to fetch (the NestJS server's idle figure above). ` +
        'The nestc client spends ' +
        `${us(nn?.client_cpu_us_per_resp)} µs per response against the same server.`,
    );
  if (stalled.some((n) => n > 0))
    out.push(
      '- **What limits the nestc server\'s events, and its request errors** (' +
        `${stalled.join(', ')} per run; events / s in the runs: ${evRange('nestc')}): not the server (core 0 ` +
        `${pc(evn.length ? med('kafka-events', 'nestc', 'nestc').server_cpu_s / med('kafka-events', 'nestc', 'nestc').handled_s : null)} ` +
        'busy) but the clients and the mock on core 1: the 4 nestc clients emit their events without waiting for ' +
        'them, faster than the mock takes them in, until librdkafka\'s producer queue (100,000 messages by default) is full; a `ticks` ' +
        'request that meets the full queue fails at once with `NC_ESTALLED` ("could not be produced"), which nestc ' +
        'bench counts as an error and sends again 10 ms later. Events refused that way are not counted: the figure ' +
        'is the server\'s counter. Against the NestJS server the `ticks` replies come back slowly, the clients emit ' +
        'less, and the queue rarely fills.',
    );
  return out.length ? `${out.join('\n')}\n` : '';
})();

const kafkaMd = brokerSection('kafka', kafkaPoints, kafkaMachine, {
  name: 'Kafka',
  broker: 'kafka-mock',
  brokerFull: 'kafka-mock (core 1 full by itself)',
  intro: (rm) =>
    'The same service over Kafka: the nestc server (`nestc-server --url kafka://… --topic-prefix nestc.`, nestc\'s ' +
    `Kafka transport on librdkafka ${rm.librdkafka_version ?? '?'}) and NestJS\'s \`Transport.KAFKA\` server ` +
    `(\`nest-server.mjs --url kafka://… --topic-prefix nestjs.\`, KafkaJS ${rm.kafkajs_version ?? pkgVersion('kafkajs')}), ` +
    'each alone on core 0; the broker is librdkafka\'s **mock cluster** (`kafka-mock`, the test suite\'s Kafka: a ' +
    'real Kafka protocol server, 3 brokers in one process, topics auto-created with 4 partitions), not a Kafka ' +
    'broker, pinned to core 1 together with the load generator like the other brokers; its CPU is the whole ' +
    'process (all 3 brokers). Topics are routes and a topic cannot be named `{"cmd":"sum"}`, so both servers ' +
    'serve the handlers under string routes of their own (`nestc.sum`, `nestjs.sum`, …: each reads its topics from ' +
    'the beginning without meeting the other\'s requests). Each request crosses the cluster twice: the client ' +
    'produces a record to `<server>.sum` (headers `kafka_correlationId`, `kafka_replyTopic`, ' +
    '`kafka_replyPartition`), the server\'s consumer fetches it, the server produces the reply to ' +
    '`<server>.sum.reply`, the client\'s consumer fetches it. Settings (docs/kafka.md, "Settings that make it ' +
    'fast"): KafkaJS gets what the interop tests give it — a group of its own per process, 6 s sessions with 1 s ' +
    'heartbeats, `fromBeginning` on the server, `partitionsConsumedConcurrently: 4` (the mock\'s partitions per ' +
    'topic; NestJS awaits a request\'s reply inside `eachMessage`); nestc the same session, heartbeat and ' +
    '`fromBeginning`; **both the same fetch wait, 10 ms** (KafkaJS `maxWaitTimeInMs`, librdkafka ' +
    '`fetch.wait.max.ms`; see below). Two clients drive each server: **nestc client** = the nestc client library ' +
    '(`nestc bench kafka://… --engine client`: a producer, and reply partitions assigned without a group), **NestJS ' +
    'client** = NestJS\'s `ClientKafka` (`nest-client.mjs --url kafka://…`: a producer and a consumer group of its ' +
    'own on the reply topic; it waits for a probe\'s reply before the load starts, as its reply consumer starts at ' +
    '"latest"); each is one client with 100 or 1 requests in flight, `<server>.sum` of `[1,2,3]`. ',
  eventsText:
    '4 nestc clients (`nestc bench --engine client`), each producing 1000 `<server>.tick` events (value `null`) and ' +
    'then one `<server>.ticks` request, repeatedly. Over Kafka the `ticks` reply proves nothing about the events ' +
    'before it (two topics, four partitions each, no order between them), so the events are **counted on the ' +
    'server**: run.sh reads the server\'s counter (a `nestc send` of `ticks`) after the warm-up and again one ' +
    'counting window later, while the load runs; events / s = the counter\'s growth / the time between the two ' +
    'readings, and the server\'s and kafka-mock\'s CPU over the same span are divided by those events. The client ' +
    'CPU per event is nestc bench\'s own over its window, per event it sent.',
  roundTrip:
    'One request at a time: every hop is a fetch, and the mock answers a fetch that found nothing only when its ' +
    'wait (10 ms here) is over, even if a record arrives meanwhile, so a round trip is about two fetch waits (the ' +
    'server\'s, then the client\'s) plus the produce requests; librdkafka also waits up to its `linger.ms` (5 ms by ' +
    'default) before it sends a produce request, KafkaJS sends each at once.',
  extraNotes:
    '- **The mock\'s fetch wait sets the pace.** A fetch that finds no record is answered when its wait ends, ' +
    'whatever arrives in between; with the interop tests\' 100 ms, 100 requests in flight made about 500 round trips ' +
    'a second whichever server and client ran (two waits per round trip), so the bench uses 10 ms on both sides. Even ' +
    'so responses / s at 1 × 100 is bounded by the fetch cycles more than by any core: compare **CPU per response**. ' +
    'Both sides also pay CPU for fetches that find nothing (every 10 ms per broker connection), which is a large ' +
    'part of CPU per response at 1 × 1 (a few dozen responses a second).\n' +
    kafkaIdleNote +
    kafkaLimitsNote +
    ((kafkaMachine?.busy_pct_before ?? 0) >= 10
      ? '- **This run shared the machine with other work** (' +
        `${kafkaMachine.busy_pct_before} % busy, load average ${kafkaMachine.loadavg_before} at the start, and most ` +
        'points started busy): where "bound by" says no core was full, the rest of the cores went to other processes, ' +
        'and every hop through the mock waited for a turn on a core. Rates and latencies are disturbed; **CPU per ' +
        'response and per event** (each process\'s own time over its own work) are the figures to compare, and even ' +
        'they are inflated by the contention (wake-ups on a busy core, cold caches).\n'
      : '') +
    '- **A real Kafka broker** answers a waiting fetch as soon as data arrives and does far more per record than ' +
    'the mock (a log on disk, replication): the rates and round trips here say nothing about one; the server and ' +
    'client CPU per message is what carries over.',
});

const rmqMd =
  brokerSection('rmq', rmqNoAckPoints, rmqMachine, {
    ...rmqCommon,
    name: 'RabbitMQ',
    intro: rmqIntro(false),
    extraNotes: rmqBusyNote.trimEnd(),
  }) +
  brokerSection('rmq-ack', rmqAckPoints, rmqMachine, {
    ...rmqCommon,
    name: 'RabbitMQ noAck=false',
    intro: rmqIntro(true),
    extraNotes:
      rmqBusyNote +
      '- **NestJS server, 1 × 1** — amqplib does not set `TCP_NODELAY` unless asked (`noDelay`, false by default; ' +
      'Node.js sockets have Nagle\'s algorithm on): the NestJS handler writes its `basic.ack` and a moment later the ' +
      'reply, Nagle holds the reply until the broker acknowledges the segment with the ack, and the broker\'s delayed ' +
      'ACK puts that off by about 40 ms, so its round trips take about 47 ms whichever client sends. That is ' +
      '`Transport.RMQ` as it comes; with `socketOptions: { connectionOptions: { noDelay: true } }` the same server ' +
      'answered in about 2 ms (p50, a separate 3 s check). nestc\'s connections set `TCP_NODELAY`, and what nestc ' +
      'writes in one loop iteration (the reply, then its ack) leaves in one write anyway.',
  });

// ---- gRPC: nestc's and NestJS's gRPC servers of the conformance service ------------------------------------
// No broker: each server alone on core 0, the load generator on core 1 (run.sh, "gRPC"). Points: grpc-unary and
// grpc-stream (client 'grpc-js': grpc-client.mjs; 'nestc': `nestc bench grpc://…`, or a null result with `skipped`
// when this nestc's bench does not speak gRPC), grpc-memory (idle and after-load RSS per server).
const CLK_HZ = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();
const grpcMachine = grpcPoints.find((p) => p.scenario === 'machine')?.result ?? null;
function grpcSection() {
  const gp = grpcPoints.filter((p) => p.scenario !== 'machine');
  if (!gp.length) return '';
  const rm = grpcMachine ?? {};
  const items = rm.stream_items ?? 100;
  const GCLIENTS = { 'grpc-js': 'grpc-js (NestJS client)', nestc: 'nestc client' };
  const inflightOf = (p) => p.inflight ?? p.result?.inflight ?? null;
  const gmedian = (list) => {
    const ok = list.filter((p) => p.result);
    if (!ok.length) return null;
    ok.sort((a, b) => a.result.rps - b.result.rps);
    return ok[(ok.length - 1) >> 1];
  };
  const gget = (scenario, server, client, n) =>
    gmedian(gp.filter((q) => q.scenario === scenario && q.server === server && q.client === client && inflightOf(q) === n));
  const shapes = (scenario) =>
    [...new Set(gp.filter((q) => q.scenario === scenario && q.result).map(inflightOf))].sort((a, b) => a - b);
  // One normalised row: calls, messages (= calls for unary), server CPU per call and per message, RSS, core 0's share.
  const row = (p) => {
    if (!p) return null;
    const r = p.result;
    const msgs = r.messages ?? r.requests;
    const dur = r.duration_s;
    return {
      rps: r.rps,
      mps: r.mps ?? (dur ? msgs / dur : null),
      p50: r.p50_us ?? null,
      p99: r.p99_us ?? null,
      srvUs: r.server_cpu_us_per_resp ?? null,
      srvMsgUs: r.server_cpu_us_per_msg ?? r.server_cpu_us_per_resp ?? null,
      // CPU time comes in clock ticks (10 ms at the usual 100 Hz): few ticks make a coarse figure, none an upper bound.
      ticks: r.server_cpu_s != null ? Math.round(r.server_cpu_s * CLK_HZ) : null,
      calls: r.requests ?? null,
      msgs,
      cliUs: r.client_cpu_us_per_resp ?? null,
      rss: p.server_rss_kib ?? r.server_rss_kib ?? null,
      srv: r.server_cpu_s != null && dur ? r.server_cpu_s / dur : null,
      busy: p.busy_pct_before ?? null,
      threads: p.threads ?? null,
      errors: r.errors ?? 0,
    };
  };
  const pct = (v) => (v == null ? '—' : `${num(100 * v)} %`);
  const mibs = (kib) => (kib == null ? '—' : num(mib(kib), 1));
  // server CPU per call / message with its precision: "< x" when no tick was counted (x = one tick's worth),
  // "~x" under 10 ticks
  const cpuFmt = (v, perKey, countKey) => {
    if (!v || v[perKey] == null) return '—';
    if (v.ticks === 0) return v[countKey] ? `< ${us(1e6 / CLK_HZ / v[countKey])}` : '—';
    return `${v.ticks != null && v.ticks < 10 ? '~' : ''}${us(v[perKey])}`;
  };
  const cpuVal = (key) => (v) => (v.ticks === 0 ? null : v[key]);

  const all = [
    '| load | server | client | calls / s | messages / s | p50 µs | p99 µs | server CPU µs / call | ' +
      'server CPU µs / message | server RSS MiB | core 0: server busy | threads | machine busy before |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const LOAD = { 'grpc-unary': (n) => `unary \`Sum\`, ${n} in flight`, 'grpc-stream': (n) => `\`Streaming\` × ${items}, ${n} in flight` };
  for (const sc of ['grpc-unary', 'grpc-stream'])
    for (const n of shapes(sc))
      for (const server of ['nestc', 'nestjs'])
        for (const client of ['grpc-js', 'nestc']) {
          const v = row(gget(sc, server, client, n));
          if (!v) continue;
          all.push(
            `| ${LOAD[sc](n)} | ${NAMES[server]} | ${GCLIENTS[client]} | ${num(v.rps)} | ${num(v.mps)} | ${us(v.p50)} | ` +
              `${us(v.p99)} | ${cpuFmt(v, 'srvUs', 'calls')} | ${cpuFmt(v, 'srvMsgUs', 'msgs')} | ${mibs(v.rss)} | ${pct(v.srv)} | ${v.threads ?? '—'} | ` +
              `${v.busy == null ? '—' : `${v.busy} %`} |`,
          );
        }

  // nestc server / NestJS server, the same client and load.
  const rows = ['| load | client | metric | nestc server | NestJS server | nestc / NestJS |', '| --- | --- | --- | ---: | ---: | ---: |'];
  const cmp = (load, label, a, b, metrics) => {
    if (!a && !b) return;
    for (const [name, sel, fmt] of metrics) {
      const va = a ? sel(a) : null;
      const vb = b ? sel(b) : null;
      rows.push(`| ${load} | ${label} | ${name} | ${fmt(va)} | ${fmt(vb)} | ${x(ratio(va, vb))} |`);
    }
  };
  for (const n of shapes('grpc-unary'))
    for (const client of ['grpc-js', 'nestc'])
      cmp(LOAD['grpc-unary'](n), GCLIENTS[client], row(gget('grpc-unary', 'nestc', client, n)),
        row(gget('grpc-unary', 'nestjs', client, n)), [
          ['calls / s', (v) => v.rps, fmtRps],
          ['p50 latency µs', (v) => v.p50, us],
          ['server CPU µs / call', cpuVal('srvUs'), us],
          ['server RSS MiB', (v) => mib(v.rss), (v) => num(v, 1)],
        ]);
  for (const n of shapes('grpc-stream'))
    cmp(LOAD['grpc-stream'](n), GCLIENTS['grpc-js'], row(gget('grpc-stream', 'nestc', 'grpc-js', n)),
      row(gget('grpc-stream', 'nestjs', 'grpc-js', n)), [
        ['messages / s', (v) => v.mps, fmtRps],
        ['server CPU µs / message', cpuVal('srvMsgUs'), us],
        ['server RSS MiB', (v) => mib(v.rss), (v) => num(v, 1)],
      ]);
  // nestc client / grpc-js, the same server and load (where the nestc client ran).
  const crows = ['| load | server | metric | nestc client | grpc-js | nestc / grpc-js |', '| --- | --- | --- | ---: | ---: | ---: |'];
  for (const n of shapes('grpc-unary'))
    for (const server of ['nestc', 'nestjs']) {
      const a = row(gget('grpc-unary', server, 'nestc', n));
      const b = row(gget('grpc-unary', server, 'grpc-js', n));
      if (!a || !b) continue;
      for (const [name, sel, fmt] of [
        ['calls / s', (v) => v.rps, fmtRps],
        ['p50 latency µs', (v) => v.p50, us],
        ['client CPU µs / call', (v) => v.cliUs, us],
      ])
        crows.push(`| ${LOAD['grpc-unary'](n)} | ${NAMES[server]} server | ${name} | ${fmt(sel(a))} | ${fmt(sel(b))} | ${x(ratio(sel(a), sel(b)))} |`);
    }
  const clients =
    crows.length > 2 ? `\n\n#### Clients: the same server, nestc client / grpc-js\n\n${crows.join('\n')}` : '';
  // Memory: right after the start, and after all the points.
  const mem = (server) => gp.find((q) => q.scenario === 'grpc-memory' && q.server === server)?.result ?? null;
  const ma = mem('nestc');
  const mb = mem('nestjs');
  for (const [name, sel] of [
    ['RSS idle, after the start', (m) => m.idle_rss_kib],
    ['anonymous RSS idle', (m) => m.idle_anon_kib],
    ['RSS after all the points', (m) => m.rss_kib_after],
    ['threads after all the points', (m) => m.threads],
  ]) {
    const va = ma ? sel(ma) : null;
    const vb = mb ? sel(mb) : null;
    const threads = name.startsWith('threads');
    const fmt = threads ? (v) => num(v) : (v) => mibs(v);
    if (va != null || vb != null)
      rows.push(`| memory | — | ${name}${threads ? '' : ' MiB'} | ${fmt(va)} | ${fmt(vb)} | ${x(ratio(va, vb))} |`);
  }

  // The nestc client column: measured, or why not.
  const skipped = gp.filter((q) => q.client === 'nestc' && q.skipped);
  const nestcClient = skipped.length
    ? `\n\n**The nestc client column is empty:** \`nestc bench\` of this build does not speak gRPC ` +
      `(it answered: \`${skipped[0].skipped}\`). run.sh probes it once per run and fills the column when it does.`
    : '';
  const failed = gp.filter((q) => !q.result && !q.skipped).length;
  const errs = gp.filter((q) => q.result?.errors).length;
  const gnoisy = gp.filter((q) => q.busy_pct_before >= 10).length;
  const notes = [];
  const u100 = [row(gget('grpc-unary', 'nestc', 'grpc-js', 100)), row(gget('grpc-unary', 'nestjs', 'grpc-js', 100))];
  if (u100[0] && u100[1])
    notes.push(
      `- **unary, 100 in flight, grpc-js** — core 0 was ${pct(u100[0].srv)} busy with the nestc server and ` +
        `${pct(u100[1].srv)} with NestJS's.` +
        (u100[0].srv != null && u100[0].srv < FULL
          ? ' The nestc server is not the limit there (one grpc-js process on core 1 is), so calls / s understates ' +
            'the difference: compare **server CPU per call**.'
          : ''),
    );
  notes.push(
    '- At 1 in flight every call wakes the server up on its own (no batching): CPU per call there is mostly that ' +
      'cost, and calls / s is the round trip through both processes.',
  );
  const s1 = row(gget('grpc-stream', 'nestjs', 'grpc-js', 1));
  if (s1)
    notes.push(
      '- **Streaming, NestJS** — the reference server (`nest-grpc-server.mjs`, the test suite\'s) emits each item of ' +
        'its Observable from a `setTimeout(next, delay_ms)`, also at `delay_ms` 0, which Node.js runs after at least ' +
        `1 ms: a stream of ${items} items takes at least ${items} ms (p50 here ${us(s1.p50 != null ? s1.p50 / 1000 : null)} ms), so at ` +
        '1 in flight its messages / s is bounded by that timer, not by its CPU (core 0 ' +
        `${pct(s1.srv)} busy); with 16 streams in flight the timers overlap. Its CPU per message includes the ` +
        'timers\' cost. nestc\'s conformance handler also sends one item per timer (libuv\'s), but a libuv timer of 0 ms ' +
        'fires in the next loop iteration, without a minimum wait.',
    );
  return (
    '## gRPC transport\n\n' +
    'The conformance service (`tests/vectors/grpc/conformance.proto`, DESIGN.md §5a) from two gRPC servers, each ' +
    'alone on core 0 (no broker): **nestc** = `nestc conformance grpc://127.0.0.1:0 --proto conformance.proto` ' +
    `(nestc's gRPC transport on nghttp2 ${rm.nghttp2_version ?? '?'}, one loop thread), **NestJS** = ` +
    "`tests/interop/nest-grpc-server.mjs` (NestJS's `Transport.GRPC`, the test suite's reference, on " +
    `@grpc/grpc-js ${rm.grpc_js_version ?? '?'}, one Node.js process). The load generator on core 1, over one HTTP/2 ` +
    'connection: **grpc-js** (`bench/grpc-client.mjs`, the library NestJS\'s gRPC client runs on: the "NestJS ' +
    'client" column) and the **nestc client** (`nestc bench grpc://… nestc.conformance.Conformance/Sum`, unary ' +
    'only). Loads: unary `Sum` of `[1,2,3]` with 1, 16 and 100 calls in flight; server-streaming `Streaming` of ' +
    `${items} items (delay 0) with 1 and 16 calls in flight, every stream read to its end. Server CPU is the ` +
    'server\'s user + system time (all threads) from `/proc/<pid>/stat` over the counting window, divided by the ' +
    'calls (unary) or the messages (streaming) completed in it; latency runs from a call to its status (streaming: ' +
    'the whole stream); server RSS is its VmRSS after the point. Ratios are ' +
    'nestc / NestJS: for calls / s and messages / s higher is better, for latency, CPU and RSS lower is better.' +
    (rm.date
      ? ` Recorded ${rm.date}${rm.repeat > 1 ? `, each point ${rm.repeat} times (the tables show the median run)` : ''}` +
        `; ${rm.warmup_s ?? args.warmup} s warm-up and ${rm.duration_s ?? args.duration} s counted per point, after ` +
        'untimed unary and streaming load per server; the machine was ' +
        `${rm.busy_pct_before ?? '?'} % busy before the run (load average ${rm.loadavg_before ?? '?'}); each ` +
        'point\'s own reading is in the last column below.'
      : '') +
    nestcClient +
    (gnoisy ? `\n\n**Warning:** ${gnoisy} gRPC point(s) started while the machine was busy with other work.` : '') +
    (failed ? `\n\n**Warning:** ${failed} gRPC run(s) failed (see the raw results).` : '') +
    (errs ? `\n\n**Warning:** ${errs} gRPC run(s) counted call errors (see the raw results).` : '') +
    '\n\n#### All points\n\n' +
    all.join('\n') +
    `\n\nServer CPU comes from clock ticks (${1000 / CLK_HZ} ms each): "~" marks a figure from fewer than 10 ticks, ` +
    '"<" one from none (at most one tick\'s worth; left out of the ratios).' +
    '\n\n#### Servers: the same client, nestc server / NestJS server\n\n' +
    rows.join('\n') +
    clients +
    '\n\n#### What bounds each figure\n\n' +
    notes.join('\n') +
    '\n\n'
  );
}
const grpcMd = grpcSection();

// ---- machine ---------------------------------------------------------------------------------------------
const sh = (cmd, argv) => {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
};
const cpuModel =
  (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? os.cpus()[0]?.model;
const cc = args.build ? sh('sed', ['-n', 's/^CMAKE_C_COMPILER:[A-Z]*=//p', join(args.build, 'CMakeCache.txt')]) : 'cc';
const machine = [
  `- CPU: ${cpuModel}, ${os.cpus().length} cores; ${num(os.totalmem() / 2 ** 30, 1)} GiB RAM`,
  `- kernel: ${os.type()} ${os.release()} (${os.arch()})`,
  `- compiler: ${sh(cc || 'cc', ['--version']).split('\n')[0]}, Release build (-O3)`,
  `- Node.js ${process.version}; @nestjs/microservices ${pkgVersion('@nestjs/microservices')}, ` +
    `@nestjs/core ${pkgVersion('@nestjs/core')}, rxjs ${pkgVersion('rxjs')}` +
    (redisPoints.length ? `, ioredis ${pkgVersion('ioredis')}; redis-server ${redisMachine?.redis_version ?? '?'}` : '') +
    (natsPoints.length
      ? `${redisPoints.length ? ',' : ';'} @nats-io/transport-node ${pkgVersion('@nats-io/transport-node')}; nats-server ` +
        `${natsMachine?.nats_version ?? '?'}`
      : '') +
    (mqttPoints.length
      ? `${redisPoints.length || natsPoints.length ? ',' : ';'} mqtt ${pkgVersion('mqtt')}; mosquitto ` +
        `${mqttMachine?.mosquitto_version ?? '?'}`
      : '') +
    (rmqPoints.length
      ? `${redisPoints.length || natsPoints.length || mqttPoints.length ? ',' : ';'} amqplib ${pkgVersion('amqplib')}, ` +
        `amqp-connection-manager ${pkgVersion('amqp-connection-manager')}; rabbitmq-server ` +
        `${rmqMachine?.rabbitmq_version ?? '?'} (Erlang/OTP ${rmqMachine?.erlang_version ?? '?'})`
      : '') +
    (kafkaPoints.length
      ? `, kafkajs ${kafkaMachine?.kafkajs_version ?? pkgVersion('kafkajs')}; librdkafka ` +
        `${kafkaMachine?.librdkafka_version ?? '?'} (nestc's Kafka transport and the mock cluster, kafka-mock)`
      : '') +
    (grpcPoints.length
      ? `, @grpc/grpc-js ${grpcMachine?.grpc_js_version ?? '?'}; nghttp2 ${grpcMachine?.nghttp2_version ?? '?'} (nestc's gRPC transport)`
      : ''),
  `- nestc ${machineInfo.nestc ?? sh('git', ['-C', here, 'describe', '--always', '--dirty'])}; libuv ${sh('pkg-config', ['--modversion', 'libuv'])}, ` +
    `jansson ${sh('pkg-config', ['--modversion', 'jansson'])}`,
  `- other CPU use just before the run: ${machineInfo.busy_pct_before ?? '?'} % of all cores (load average ${machineInfo.loadavg_before ?? '?'})`,
  `- date: ${machineInfo.date ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
  ...(redisMachine
    ? [
        `- Redis section: recorded ${redisMachine.date}, nestc ${redisMachine.nestc ?? '?'}, other CPU use just before ` +
          `it ${redisMachine.busy_pct_before} % (load average ${redisMachine.loadavg_before})`,
      ]
    : []),
  ...(natsMachine
    ? [
        `- NATS section: recorded ${natsMachine.date}, nestc ${natsMachine.nestc ?? '?'}, other CPU use just before ` +
          `it ${natsMachine.busy_pct_before} % (load average ${natsMachine.loadavg_before})`,
      ]
    : []),
  ...(mqttMachine
    ? [
        `- MQTT sections: recorded ${mqttMachine.date}, nestc ${mqttMachine.nestc ?? '?'}, other CPU use just before ` +
          `it ${mqttMachine.busy_pct_before} % (load average ${mqttMachine.loadavg_before})`,
      ]
    : []),
  ...(rmqMachine
    ? [
        `- RabbitMQ sections: recorded ${rmqMachine.date}, nestc ${rmqMachine.nestc ?? '?'}, other CPU use just before ` +
          `it ${rmqMachine.busy_pct_before} % (load average ${rmqMachine.loadavg_before})`,
      ]
    : []),
  ...(kafkaMachine
    ? [
        `- Kafka section: recorded ${kafkaMachine.date}, nestc ${kafkaMachine.nestc ?? '?'}, other CPU use just before ` +
          `it ${kafkaMachine.busy_pct_before} % (load average ${kafkaMachine.loadavg_before})`,
      ]
    : []),
  ...(grpcMachine
    ? [
        `- gRPC section: recorded ${grpcMachine.date}, nestc ${grpcMachine.nestc ?? '?'}, other CPU use just before ` +
          `it ${grpcMachine.busy_pct_before} % (load average ${grpcMachine.loadavg_before})`,
      ]
    : []),
  `- each point: ${args.warmup} s warm-up, then ${args.duration} s counted; load generator \`nestc bench\` (raw engine unless stated)`,
];

const md = `# nestc vs NestJS: benchmark results

Written by \`bench/run.sh\` (see README.md for what is measured and how). Every figure below comes from one run
on this machine: each server alone on core 0 (\`taskset -c 0\`), the load generator alone on core 1
(\`taskset -c 1\`), the same load generator for all three servers. **ceiling** is a bare epoll server that frames
the requests and answers a canned reply (\`bench/ceiling.c\`): no server can do less. **nestc** is
\`bench/nestc-server.c\` (the public API); **NestJS** is \`bench/nest-server.mjs\` (NestJS's own TCP transport).
Ratios are nestc divided by the other; for CPU and latency lower is better.${
  machineInfo.repeat > 1 ? ` Each point was measured ${machineInfo.repeat} times; the tables show the median run.` : ''
}${
  redisPoints.length
    ? ' The Redis section (the same service over a Redis broker, NestJS\'s `Transport.REDIS`) was recorded in its own ' +
      `run${redisMachine?.date && redisMachine.date !== machineInfo.date ? ` (${redisMachine.date})` : ''} and says how.`
    : ''
}${
  natsPoints.length
    ? ' The NATS section (the same over a NATS server, NestJS\'s `Transport.NATS`) was recorded in its own ' +
      `run${natsMachine?.date && natsMachine.date !== machineInfo.date ? ` (${natsMachine.date})` : ''} and says how.`
    : ''
}${
  mqttPoints.length
    ? ' The MQTT sections (the same over mosquitto, NestJS\'s `Transport.MQTT`, QoS 0 and QoS 1) were recorded in ' +
      `their own run${mqttMachine?.date && mqttMachine.date !== machineInfo.date ? ` (${mqttMachine.date})` : ''} and say how.`
    : ''
}${
  rmqPoints.length
    ? ' The RabbitMQ sections (the same over rabbitmq-server, NestJS\'s `Transport.RMQ`, noAck true and false) were ' +
      `recorded in their own run${rmqMachine?.date && rmqMachine.date !== machineInfo.date ? ` (${rmqMachine.date})` : ''} and say how.`
    : ''
}${
  kafkaPoints.length
    ? ' The Kafka section (the same over librdkafka\'s mock cluster, NestJS\'s `Transport.KAFKA` on KafkaJS) was ' +
      `recorded in its own run${kafkaMachine?.date && kafkaMachine.date !== machineInfo.date ? ` (${kafkaMachine.date})` : ''} and says how.`
    : ''
}${
  grpcPoints.length
    ? ' The gRPC section (nestc\'s and NestJS\'s gRPC servers of the conformance service, `Transport.GRPC`) was ' +
      `recorded in its own run${grpcMachine?.date && grpcMachine.date !== machineInfo.date ? ` (${grpcMachine.date})` : ''} and says how.`
    : ''
}${
  machineInfo.busy_pct_before >= 10
    ? `\n\n**Warning:** the machine was ${machineInfo.busy_pct_before} % busy with other work just before the run ` +
      `(load average ${machineInfo.loadavg_before}); the figures may be disturbed.`
    : ''
}${
  noisy.length
    ? `\n\n**Warning:** ${noisy.length} point(s) started while the machine was busy with other work (\`busy_pct_before\` ` +
      'in the raw results); their figures are disturbed.'
    : ''
}${exits
  .map(
    (p) =>
      `\n\n**Warning:** the ${NAMES[p.server] ?? p.server} server exited during the run with status ` +
      `${p.result.status}${signalName(p.result.status)} (log: \`bench/out/${p.result.log}\`); it was started again ` +
      'for the points after it, and the point it died in shows failed requests.',
  )
  .join('')}

${
  sections.length
    ? `## Summary

| target | nestc | result |
| --- | ---: | --- |
${summary.map((r) => `| ${r.join(' | ')} |`).join('\n')}

## Scenarios

${sections.join('\n')}
`
    : ''
}${redisMd}${natsMd}${mqttMd}${rmqMd}${kafkaMd}${grpcMd}## Machine

${machine.join('\n')}

## Raw results

One line per point (\`results.json\`): \`result\` is the \`nestc bench\` or \`nest-client.mjs\` JSON line (null when the
run failed); beside it the server's thread count at the end of the point, the run number, how busy the cores were
just before it (%), and where they apply the payload size in bytes and the number of workers.

\`\`\`
${lines.join('\n')}
\`\`\`
${
  redisLines.length
    ? `
Redis (\`results-redis.json\`): \`client\` is the load generator (\`nestc\`: \`nestc bench --engine client\`, \`nestjs\`:
\`nest-client.mjs\`); \`broker_cpu_s\` (beside the result for \`nestc bench\`, inside it for \`nest-client.mjs\`) is
redis-server's CPU time over the counting window.

\`\`\`
${redisLines.join('\n')}
\`\`\`
`
    : ''
}${
  natsLines.length
    ? `
NATS (\`results-nats.json\`): the same members; \`broker_cpu_s\` is nats-server's CPU time over the counting window.

\`\`\`
${natsLines.join('\n')}
\`\`\`
`
    : ''
}${
  mqttLines.length
    ? `
MQTT (\`results-mqtt.json\`): the same members; the QoS 1 points are named \`mqtt-qos1-…\`; \`broker_cpu_s\` is
mosquitto's CPU time over the counting window.

\`\`\`
${mqttLines.join('\n')}
\`\`\`
`
    : ''
}${
  rmqLines.length
    ? `
RabbitMQ (\`results-rmq.json\`): the same members; the noAck=false points are named \`rmq-ack-…\`; \`broker_cpu_s\` is
rabbitmq-server's CPU time (the Erlang VM, all its threads) over the counting window.

\`\`\`
${rmqLines.join('\n')}
\`\`\`
`
    : ''
}${
  kafkaLines.length
    ? `
Kafka (\`results-kafka.json\`): the same members for requests (\`broker_cpu_s\` is kafka-mock's CPU time, all its
threads); \`kafka-events\` results are run.sh's own: \`handled\` events counted on the server's counter
(\`counter_before\` → \`counter_after\`) over \`handled_s\`, the server's and kafka-mock's CPU over that span, and
\`load\`, the \`nestc bench\` line that made the load.

\`\`\`
${kafkaLines.join('\n')}
\`\`\`
`
    : ''
}${
  grpcLines.length
    ? `
gRPC (\`results-grpc.json\`): \`client\` is the load generator (\`grpc-js\`: \`grpc-client.mjs\`, \`nestc\`: \`nestc bench
grpc://…\`; a null result with \`skipped\` when that bench did not speak gRPC); \`server_rss_kib\` and \`threads\` are
the server's after the point; \`grpc-memory\` is each server's RSS right after its start and after all its points.

\`\`\`
${grpcLines.join('\n')}
\`\`\`
`
    : ''
}`;
writeFileSync(args.out, md);
