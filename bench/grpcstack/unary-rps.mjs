// Unary Sum calls from one grpc-js client (the client NestJS uses) against a gRPC conformance server:
// `inflight` calls kept in flight for `duration` seconds; prints one JSON line (calls, rps, p50/p99 in µs).
//   node unary-rps.mjs --url HOST:PORT [--inflight N] [--duration S] [--proto FILE]
// Run from tests/interop (its node_modules hold the pinned @grpc/grpc-js and @grpc/proto-loader).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'tests', 'interop', 'package.json'));
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    inflight: { type: 'string', default: '1' },
    duration: { type: 'string', default: '5' },
    proto: { type: 'string', default: join(here, '..', '..', 'tests', 'vectors', 'grpc', 'conformance.proto') },
  },
});
const def = protoLoader.loadSync(args.proto, { keepCase: true });
const pkg = grpc.loadPackageDefinition(def);
const client = new pkg.nestc.conformance.Conformance(args.url, grpc.credentials.createInsecure());
const call = () => new Promise((resolve, reject) =>
  client.Sum({ numbers: [1, 2, 3] }, (err, res) => (err ? reject(err) : resolve(res))));
for (let i = 0; i < 200; i++) await call(); // warm-up (JIT, connection)
const lat = [];
const end = Date.now() + Number(args.duration) * 1000;
const worker = async () => {
  while (Date.now() < end) {
    const t = process.hrtime.bigint();
    await call();
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
};
const t0 = Date.now();
await Promise.all(Array.from({ length: Number(args.inflight) }, worker));
const secs = (Date.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const q = (p) => Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]);
console.log(JSON.stringify({ calls: lat.length, rps: Math.round(lat.length / secs), p50_us: q(0.5), p99_us: q(0.99) }));
client.close();
