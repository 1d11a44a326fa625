// Turns bench/libnats/results.json (written by compare.sh) into the tables of bench/libnats/RESULTS.md.
//
//   node report.mjs results.json > RESULTS.md
import { readFileSync } from 'node:fs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const machine = lines.find((p) => p.scenario === 'machine') ?? {};
const num = (v, d = 0) =>
  v == null || !Number.isFinite(v) || v < 0
    ? '—'
    : v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const us = (v) => (v == null ? '—' : num(v, v < 10 ? 2 : 1));
const x = (r) => (r == null || !Number.isFinite(r) ? '—' : `${num(r, r < 0.1 ? 3 : r < 10 ? 2 : 1)}×`);
const median = (a) => {
  const s = a.filter((v) => v != null && Number.isFinite(v)).sort((p, q) => p - q);
  return s.length ? s[(s.length - 1) >> 1] : null;
};

const WHAT = {
  nestc: 'nestc client library (`nestc bench --engine client`): inbox per request',
  'libnats inbox': 'libnats, NestJS pattern (inbox per request), defaults: a delivery thread per subscription',
  'libnats inbox global': 'libnats, NestJS pattern, shared delivery pool (`UseGlobalMessageDelivery`)',
  'libnats inbox global asap': 'libnats, NestJS pattern, shared delivery pool + `SetSendAsap`',
  'libnats shared': 'libnats, one wildcard inbox for all requests (not NestJS\'s pattern)',
  'libnats shared asap': 'libnats, one wildcard inbox + `SetSendAsap`',
  'libnats request': 'libnats `natsConnection_Request`, one blocking thread per request in flight',
};
const SERVERS = {
  nestc: 'nestc server (`nestc-server --url nats://…`)',
  libnats: 'libnats responder, libnats defaults (`libnats-bench --serve`)',
  'libnats-asap': 'libnats responder with `SetSendAsap` (`libnats-bench --serve --asap`)',
};

let md = `# libnats vs nestc's NATS implementation

Written by \`bench/libnats/compare.sh\` (the reading: bench/README.md, "Why nestc speaks NATS itself"). Recorded
${machine.date ?? '?'}; nestc ${machine.nestc ?? '?'}, libnats ${machine.libnats ?? '?'}, nats-server ${machine.nats_server ?? '?'};
the machine was ${machine.busy_pct_before ?? '?'} % busy before the run (load average ${machine.loadavg_before ?? '?'}). One
nats-server on core 1 with the client under test, the responder alone on core 0; \`{"cmd":"sum"}\` of \`[1,2,3]\`,
${machine.warmup_s ?? '?'} s warm-up then ${machine.duration_s ?? '?'} s counted per point. Client CPU per response: the client
process's user + system time (all threads) over the window / responses. Threads: the client's thread count in the
middle of the window (libnats-bench also reports the largest it saw, sampled every 20 ms). Ratios: the figure / the
nestc client's against the same responder and in flight.
`;

const rr = lines.filter((p) => p.scenario === 'reqrep');
const noisy = rr.filter((p) => p.busy_pct_before >= 10).length;
if (noisy) md += `\n**Warning:** ${noisy} point(s) started while the machine was busy with other work.\n`;
for (const server of Object.keys(SERVERS)) {
  const pts = rr.filter((p) => p.server === server);
  if (!pts.length) continue;
  md += `\n## Request / reply against the ${SERVERS[server]}\n\n`;
  md +=
    '| client | in flight | responses / s | p50 µs | p99 µs | client CPU µs / resp | CPU vs nestc | threads (max seen) | responder CPU µs / resp |\n' +
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  for (const n of [100, 1]) {
    const base = pts.find((p) => p.client === 'nestc' && p.inflight === n)?.result;
    for (const p of pts.filter((q) => q.inflight === n)) {
      const r = p.result;
      if (!r) {
        md += `| ${WHAT[p.client] ?? p.client} | ${n} | failed | | | | | | |\n`;
        continue;
      }
      const threads = p.threads_mid ?? r.threads_end;
      const max = r.threads_max != null && r.threads_max !== threads ? ` (${r.threads_max})` : '';
      md +=
        `| ${WHAT[p.client] ?? p.client} | ${n} | ${num(r.rps)} | ${us(r.p50_us)} | ${us(r.p99_us)} | ` +
        `${us(r.client_cpu_us_per_resp)} | ${base ? x(r.client_cpu_us_per_resp / base.client_cpu_us_per_resp) : '—'} | ` +
        `${threads ?? '—'}${max} | ${us(r.server_cpu_us_per_resp)} |\n`;
      if (r.errors || r.unanswered) md += `| ↳ ${r.errors} error(s), ${r.unanswered ?? 0} unanswered | | | | | | | | |\n`;
    }
  }
}

const os = lines.filter((p) => p.scenario === 'oneshot');
if (os.length) {
  const ONE = {
    'nestc-send': '`nestc send` (the CLI: one connection, one request)',
    'nestc-oneshot': 'nestc client API (`nestc-oneshot`)',
    'libnats-oneshot': 'libnats (`libnats-bench --oneshot`)',
  };
  const runs = median(Object.keys(ONE).map((c) => os.filter((p) => p.client === c).length));
  md +=
    `\n## Connect, request, close (medians of ${runs} processes each)\n\n` +
    'Each process connects, sends one request and closes, twice: the first cycle pays the process\'s one-time costs, ' +
    'the second is a connection alone. Library init = `nats_Open()` (libnats\'s global state and its own threads; ' +
    'nestc has no global state); connect = until the connection is usable (name resolution, TCP, INFO, CONNECT, ' +
    'PING/PONG; libnats also starts the connection\'s threads; nestc\'s first name resolution starts libuv\'s thread ' +
    'pool); request = one request/reply (nestc: inbox SUB + PUB, UNSUB; libnats: `natsConnection_Request`); close = ' +
    'closing the connection and freeing the client (libnats: `natsConnection_Close` + `_Destroy`, which join its ' +
    'threads); library shutdown = `nats_Close()`. Process = wall time from starting the process (under `taskset`) ' +
    'to its exit (`nestc send`: one cycle; the others: library init, two cycles, shutdown).\n\n' +
    '| client | library init µs | connect µs | request µs | close µs | 2nd connect µs | 2nd request µs | 2nd close µs | library shutdown µs | in process µs | process µs | threads while connected | failed |\n' +
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  for (const [c, label] of Object.entries(ONE)) {
    const ps = os.filter((p) => p.client === c);
    if (!ps.length) continue;
    const ok = ps.filter((p) => p.result && (c === 'nestc-send' ? p.result.value === '6' : p.result.ok === true));
    const m = (k) => median(ok.map((p) => p.result[k]));
    const f = (k) => (c === 'nestc-send' ? '—' : us(m(k)));
    md +=
      `| ${label} | ${c === 'libnats-oneshot' ? us(m('lib_init_us')) : '—'} | ${f('connect_us')} | ${f('request_us')} | ` +
      `${f('close_us')} | ${f('connect2_us')} | ${f('request2_us')} | ${f('close2_us')} | ` +
      `${c === 'libnats-oneshot' ? us(m('lib_close_us')) : '—'} | ${f('total_us')} | ` +
      `${us(median(ok.map((p) => p.process_wall_us)))} | ${c === 'nestc-send' ? '—' : (m('threads_connected') ?? '—')} | ` +
      `${ps.length - ok.length} |\n`;
  }
}
process.stdout.write(md);
