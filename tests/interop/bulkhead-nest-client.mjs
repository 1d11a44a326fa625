// bulkhead-nest-client.mjs — NestJS clients against `nestc conformance --max-in-flight 1 --workers 2` (the
// built-in server bulkhead, docs/resilience.md). Needs NESTC_BIN (the nestc CLI).
//   - client A's `sleep` is admitted; once the server's own metrics (the admin endpoint) show it in its
//     handler, client B's `sum` (another connection, maybe another worker: the limit is the server's) gets
//     NestJS's error reply: an RpcException-shaped {status:'error', message:'refused (...)'};
//   - A's `sleep` then answers, and B's next `sum` runs.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import 'reflect-metadata';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';

const NESTC = process.env.NESTC_BIN;
if (!NESTC) throw new Error('NESTC_BIN is not set');
const factor = Number(process.env.NESTC_TEST_TIMEOUT_FACTOR || 1);
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};

const server = spawn(
  NESTC,
  ['conformance', 'tcp://127.0.0.1:0', '--max-in-flight', '1', '--workers', '2', '--admin', '127.0.0.1:0'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
process.on('exit', () => server.exitCode === null && server.kill('SIGTERM'));
const ports = await new Promise((resolve, reject) => {
  const got = {};
  createInterface({ input: server.stdout }).on('line', (l) => {
    let m;
    if ((m = /listening on port (\d+)/.exec(l))) got.port = Number(m[1]);
    if ((m = /admin on port (\d+)/.exec(l))) got.admin = Number(m[1]);
    if (got.port && got.admin) resolve(got);
  });
  server.on('exit', (code) => reject(new Error(`nestc conformance exited with ${code}`)));
});

const client = () =>
  ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port: ports.port } });
const a = client();
const b = client();
await a.connect();
await b.connect();

// A's request is in its handler: read from the server's metrics, not guessed from a delay.
const slow = firstValueFrom(a.send('sleep', 2000 * factor));
const inHandler = /^nestc_server_in_flight\{[^}]*route="sleep"[^}]*\} 1$/m;
for (;;) {
  const text = await (await fetch(`http://127.0.0.1:${ports.admin}/metrics`)).text();
  if (inHandler.test(text)) break;
  await new Promise((r) => setTimeout(r, 10));
}

let refused;
try {
  await firstValueFrom(b.send({ cmd: 'sum' }, [1, 2]));
} catch (e) {
  refused = e;
}
check(
  refused && refused.status === 'error' && /^refused \(bulkhead full/.test(refused.message),
  `the second request gets the error reply (${JSON.stringify(refused)})`,
);
check((await slow) === 2000 * factor, 'the admitted request is answered');
check((await firstValueFrom(b.send({ cmd: 'sum' }, [1, 2]))) === 3, 'once it is done, the next request runs');

await a.close();
await b.close();
server.kill('SIGTERM');
console.log(failures ? `${failures} failure(s)` : 'all ok');
process.exit(failures ? 1 : 0);
