// ratelimit-nest-client.mjs — NestJS clients against `nestc conformance --rate-limit 0.01/3 --workers 2`
// (the built-in server rate limiter, docs/resilience.md). Needs NESTC_BIN (the nestc CLI); the server runs
// under $NESTC_WRAP when it is set (valgrind: its exit code is checked after SIGTERM).
//   - three clients (three connections, spread over the workers) send three `sum`s each at once: with a
//     burst of 3 and a token every 100 s, exactly three are answered in all (one budget for the server),
//     and the six others get NestJS's error reply, seen as an RpcException-shaped
//     {status:'error', message:'refused (...)'}.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import 'reflect-metadata';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';

const NESTC = process.env.NESTC_BIN;
if (!NESTC) throw new Error('NESTC_BIN is not set');
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};

const wrap = (process.env.NESTC_WRAP || '').split(/\s+/).filter(Boolean);
const argv = [...wrap, NESTC, 'conformance', 'tcp://127.0.0.1:0', '--rate-limit', '0.01/3', '--workers', '2'];
const server = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
process.on('exit', () => server.exitCode === null && server.kill('SIGTERM'));
const port = await new Promise((resolve, reject) => {
  createInterface({ input: server.stdout }).on('line', (l) => {
    const m = /listening on port (\d+)/.exec(l);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`nestc conformance exited with ${code}`)));
});

const clients = [0, 1, 2].map(() =>
  ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } }),
);
await Promise.all(clients.map((c) => c.connect()));
const outcomes = await Promise.all(
  clients.flatMap((c) =>
    [1, 2, 3].map((i) =>
      firstValueFrom(c.send({ cmd: 'sum' }, [i, 1])).then(
        (v) => ({ ok: v }),
        (e) => ({ err: e }),
      ),
    ),
  ),
);
const answered = outcomes.filter((o) => 'ok' in o);
const refused = outcomes.filter((o) => 'err' in o);
check(answered.length === 3, `three of nine requests answered (${answered.length})`);
check(
  refused.length === 6 &&
    refused.every((o) => o.err.status === 'error' && /^refused \(bulkhead full, rate limited/.test(o.err.message)),
  `the six others get the error reply (${JSON.stringify(refused[0]?.err)})`,
);
await Promise.all(clients.map((c) => c.close()));
server.kill('SIGTERM');
const end = await exited;
check(end.code === 0, `the server exits cleanly on SIGTERM (${JSON.stringify(end)})`);
console.log(failures ? `${failures} failure(s)` : 'all ok');
process.exit(failures ? 1 : 0);
