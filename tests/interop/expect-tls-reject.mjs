// A client that trusts the wrong CA must refuse the server: exits 0 when that happens, 1 otherwise.
//
//   node expect-tls-reject.mjs --driver nest|cli --url tls://localhost:P --ca WRONG-CA.pem [--cert F --key F]
//
// nest: a NestJS TLS client's request must fail with a certificate error (and no reply).
// cli:  `nestc send` must exit 2 with a message on stderr that mentions the certificate (DESIGN.md §5).
import { parseArgs } from 'node:util';
import { makeDriver } from './drivers.mjs';
import { scaled } from './timing.mjs';

const { values: args } = parseArgs({
  options: {
    driver: { type: 'string', default: 'nest' },
    url: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
if (!args.url || !args.ca) {
  console.error('usage: node expect-tls-reject.mjs --driver nest|cli --url tls://HOST:P --ca WRONG-CA.pem');
  process.exit(2);
}

const driver = makeDriver(args.driver, args.url, { ca: args.ca, cert: args.cert, key: args.key });
const r = await driver.send({ cmd: 'sum' }, [1, 2], { timeoutMs: scaled(5000) });
await driver.close();

const problems = [];
if (r.values.length) problems.push(`got reply values ${JSON.stringify(r.values)}`);
if (r.error !== undefined) problems.push(`got an error reply ${JSON.stringify(r.error)}, expected a local TLS failure`);
if (!r.failure) problems.push('the request succeeded');
else if (r.failure.kind === 'timeout') problems.push(`timed out instead of failing the handshake: ${r.failure.message}`);
else if (!/certificate|CERT_|self[- ]signed/i.test(r.failure.message)) {
  problems.push(`failure does not mention the certificate: ${r.failure.message}`);
}
if (args.driver === 'cli' && r.failure && !/^exit 2:/.test(r.failure.message)) {
  problems.push(`nestc send must exit 2, got: ${r.failure.message}`);
}

if (problems.length) {
  console.error(`FAIL: ${problems.join('; ')}`);
  process.exit(1);
}
console.log(`ok: rejected as expected: ${r.failure.message}`);
console.log('1 passed, 0 failed');
