// A NestJS ClientGrpcProxy (@nestjs/microservices 12.1.1, Transport.GRPC) against a gRPC conformance server:
// unary, server streaming, client streaming (an Observable as the request), bidi, an error's code and details,
// UNIMPLEMENTED, metadata. The other direction of grpc-conformance.mjs, through NestJS's own client.
//
//   node grpc-nest-client.mjs --nest | --nestc BIN [--proto FILE]
//
// Prints one line per case and exits 1 if any failed.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { Metadata } from '@grpc/grpc-js';
import { firstValueFrom, from, lastValueFrom, toArray } from 'rxjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    nest: { type: 'boolean', default: false },
    nestc: { type: 'string' },
    proto: { type: 'string', default: join(here, '..', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if (!args.nest === !args.nestc) {
  console.error('usage: node grpc-nest-client.mjs --nest | --nestc BIN [--proto FILE]');
  process.exit(2);
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

let server;
process.on('exit', () => server && server.kill('SIGTERM'));
let port;
if (args.nest) {
  port = await freePort();
  server = spawn(process.execPath, [join(here, 'nest-grpc-server.mjs'), '--port', String(port), '--proto', args.proto],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => String(d).includes('READY') && resolve());
    server.on('exit', (code) => reject(new Error(`nest-grpc-server exited ${code}`)));
  });
} else {
  // NESTC_WRAP: the server under a tool (valgrind: its error exit code fails the run, see the end)
  const wrap = process.env.NESTC_WRAP ? process.env.NESTC_WRAP.split(/\s+/).filter((w) => w) : [];
  const argv = [...wrap, args.nestc];
  server = spawn(argv[0], [...argv.slice(1), 'conformance', 'grpc://127.0.0.1:0', '--proto', args.proto],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`nestc conformance exited ${code}`)));
  });
}

const client = ClientProxyFactory.create({
  transport: Transport.GRPC,
  options: {
    url: `127.0.0.1:${port}`,
    package: 'nestc.conformance',
    protoPath: args.proto,
    loader: { keepCase: true, longs: String, enums: String, bytes: String },
  },
});
const svc = client.getService('Conformance');

const results = [];
const check = (name, got, want) => {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  results.push(g === w);
  console.log(g === w ? `ok   ${name}` : `FAIL ${name}\n     want ${w}\n     got  ${g}`);
};
const failure = (p) => p.then((v) => ({ value: v }), (e) => ({ code: e.code, details: e.details }));

check('sum', await firstValueFrom(svc.sum({ numbers: [1, 2, 3.5] })), { sum: 6.5 });
check('Sum (proto name)', await firstValueFrom(svc.Sum({ numbers: [4] })), { sum: 4 });
check('exception', await failure(firstValueFrom(svc.exception({ code: 7, message: 'denied' }))),
  { code: 7, details: 'denied' });
{
  const md = new Metadata();
  md.set('x-nest', 'yes');
  const r = await firstValueFrom(svc.context({}, md));
  check('context', [r.metadata['x-nest'], r.method], ['yes', '/nestc.conformance.Conformance/Context']);
}
check('streaming', await lastValueFrom(svc.streaming({ items: ['a', 'b'] }).pipe(toArray())),
  [{ index: 0, value: 'a' }, { index: 1, value: 'b' }]);
check('streaming fail_after', await failure(lastValueFrom(svc.streaming({ items: ['a', 'b'], fail_after: 1 }).pipe(toArray()))),
  { code: 9, details: 'failed after 1 items' });
check('clientSum', await lastValueFrom(svc.clientSum(from([{ numbers: [1] }, { numbers: [2, 3] }]))), { sum: 6 });
check('bidiEcho', await lastValueFrom(svc.bidiEcho(from([{ text: 'x' }, { text: 'y' }])).pipe(toArray()))
  .then((v) => v.map((m) => m.text)), ['x', 'y']);
check('unimplemented', (await failure(firstValueFrom(svc.unimplemented({})))).code, 12);

await client.close();
if (server) {
  // a graceful stop; nestc must exit 0 (under NESTC_WRAP=valgrind, errors give another code)
  const code = await new Promise((resolve) => {
    server.once('exit', (c, sig) => resolve(c === null ? sig : c));
    server.kill('SIGTERM');
  });
  server = null;
  if (args.nestc) check('server exit', code, 0);
}
const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed}/${results.length} passed`);
process.exit(failed ? 1 : 0);
