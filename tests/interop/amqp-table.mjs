// amqp-table.mjs HELPER — the field table nestc writes (HELPER: amqp_table_hex, nc_amqp_table_write) is
// byte for byte the one amqplib writes for the same object (lib/codec.js encodeTable, what a NestJS
// ClientRMQ / ServerRMQ sends as headers and queue arguments), and amqplib reads it back to the same
// values. The objects are given to both as the same JSON text.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const helper = process.argv[2];
if (!helper) {
  console.error('usage: node amqp-table.mjs PATH/amqp_table_hex');
  process.exit(2);
}
// lib/codec.js is not in amqplib's "exports": load it by its file name
const require = createRequire(import.meta.url);
const codec = require(path.join(path.dirname(require.resolve('amqplib')), 'lib', 'codec.js'));

const cases = [
  '{"int8":3,"int16":300,"int32":70000,"int64":1099511627776,"double":1.5,"bool":true,"str":"s"}',
  '{"edges":[127,128,-128,-129,32767,32768,-32768,-32769,2147483647,2147483648,-2147483648,-2147483649]}',
  '{"whole":3.0,"negzero":-0.0,"big":1e15,"huge":1e300,"neg":-9007199254740991,"half":-0.5,"tiny":1e-300}',
  '{"nested":{"a":[1,{"b":null,"c":"é"}],"x-message-ttl":60000},"empty":{},"list":[]}',
];
const out = spawnSync(helper, { input: cases.join('\n') + '\n', encoding: 'utf8' });
assert.equal(out.status, 0, out.stderr);
const lines = out.stdout.trim().split('\n');
assert.equal(lines.length, cases.length);
cases.forEach((text, i) => {
  const obj = JSON.parse(text);
  const buf = Buffer.alloc(65536);
  const want = buf.subarray(0, codec.encodeTable(buf, obj, 0)).toString('hex');
  assert.equal(lines[i], want, `table ${text}: nestc ${lines[i]}, amqplib ${want}`);
  const got = Buffer.from(lines[i], 'hex');
  // the same values (as JSON: amqplib itself sends -0 as the byte 0)
  assert.equal(JSON.stringify(codec.decodeFields(got.subarray(4))), JSON.stringify(obj), `amqplib reads ${text}`);
});
console.log(`amqp-table: ${cases.length} tables, nestc's bytes equal amqplib's`);
