// Write backpressure from a nestc gRPC server to a slow grpc-js reader: `nestc conformance grpc://` streams
// 2,000 items of 1 KB (2 MB, more than its 1 MiB send bound) to a grpc-js client that pauses its call after
// every 100 items and resumes on a later turn of its event loop. The server's Streaming handler waits while
// nc_reply_writable says the client does not keep up and goes on from the drain callback; asked with
// `x-nestc-report-buffered`, it ends with trailers saying how often it paused and the most reply bytes it held
// at once. Checks: every item arrives, in order, status OK; the server paused; it never held more than the
// high-water mark (64 KiB) plus what its socket holds, well under the stream's size.
//
//   node grpc-slow-reader.mjs --nestc BIN [--proto FILE]
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    nestc: { type: 'string' },
    proto: { type: 'string', default: join(here, '..', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if (!args.nestc) {
  console.error('usage: node grpc-slow-reader.mjs --nestc BIN [--proto FILE]');
  process.exit(2);
}

const N = 2000;
const BOUND = 256 * 1024; // the high-water mark, a message, and the socket's share: far under 2 MB

const wrap = process.env.NESTC_WRAP ? process.env.NESTC_WRAP.split(/\s+/).filter((w) => w) : [];
const argv = [...wrap, args.nestc];
// a 1 MiB send bound: without backpressure the stream would outgrow it and the connection be closed
const server = spawn(argv[0], [...argv.slice(1), 'conformance', 'grpc://127.0.0.1:0', '--proto', args.proto,
  '--max-send-buffer-size', '1048576'], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => server.kill('SIGTERM'));
const port = await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (d) => {
    out += d;
    const m = /listening on port (\d+)/.exec(out);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`nestc conformance exited ${code}`)));
});

const def = protoLoader.loadSync(args.proto, { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true });
const pkg = grpc.loadPackageDefinition(def);
const client = new pkg.nestc.conformance.Conformance(`127.0.0.1:${port}`, grpc.credentials.createInsecure());

let failed = 0;
const check = (name, ok, detail) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : `: ${detail}`}`);
  if (!ok) failed++;
};

const items = Array.from({ length: N }, (_, i) => `${i}:`.padEnd(1000, 'x'));
const md = new grpc.Metadata();
md.set('x-nestc-report-buffered', '1');
const got = [];
const trailers = await new Promise((resolve, reject) => {
  const call = client.Streaming({ items }, md);
  let st;
  call.on('data', (m) => {
    got.push(m);
    // a slow reader: after every 100 items, nothing is read until a later turn of the event loop (a timer
    // of a few ms), so grpc-js stops opening its HTTP/2 windows meanwhile
    if (got.length % 100 === 0) {
      call.pause();
      setTimeout(() => call.resume(), 5);
    }
  });
  call.on('status', (s) => {
    st = s;
  });
  call.on('error', reject);
  call.on('end', () => resolve(st ? st.metadata.getMap() : {}));
}).catch((e) => {
  check('stream', false, `${e.code} ${e.details}`);
  return {};
});

check('every item, in order', got.length === N && got.every((m, i) => Number(m.index) === i && m.value === items[i]),
  `${got.length} items`);
const pauses = Number(trailers['x-nestc-pauses']);
const maxBuffered = Number(trailers['x-nestc-max-buffered']);
check('the server paused for the slow reader', pauses > 0, `x-nestc-pauses ${trailers['x-nestc-pauses']}`);
check(`the server held at most ${BOUND} bytes`, maxBuffered > 0 && maxBuffered < BOUND,
  `x-nestc-max-buffered ${trailers['x-nestc-max-buffered']}`);
console.log(`# ${N} items of 1 KB; the server paused ${pauses} times, held at most ${maxBuffered} bytes`);
client.close();

const code = await new Promise((resolve) => {
  server.once('exit', (c, sig) => resolve(c === null ? sig : c));
  server.kill('SIGTERM');
});
check('server exit', code === 0, `exit ${code}`);
process.exit(failed ? 1 : 0);
