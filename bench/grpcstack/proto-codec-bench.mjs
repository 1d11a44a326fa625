// protobufjs through @grpc/proto-loader (what NestJS runs) on the message of proto-codec-bench.c: the
// method's requestSerialize (fromObject + encode) and requestDeserialize (decode + toObject), and the
// loadSync of conformance.proto. Run from tests/interop: node ../../bench/grpcstack/proto-codec-bench.mjs PROTO
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const protoLoader = require('@grpc/proto-loader');
const proto = process.argv[2], n = Number(process.argv[3] || 200000);
const opts = { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true, json: true };
let t = process.hrtime.bigint();
let pkg;
for (let i = 0; i < 200; i++) pkg = protoLoader.loadSync(proto, opts);
const parseUs = Number(process.hrtime.bigint() - t) / 200 / 1e3;
const m = pkg['nestc.conformance.Conformance'].Echo;
const v = JSON.parse('{"text":"hi","big":"9007199254740993","flag":true,"numbers":[1,2,3],' +
  '"nested":{"name":"n","value":1,"children":[{"name":"c"}]},"blob":"AQID","color":"BLUE",' +
  '"choice_nested":{"name":"x"},"ratio":0.25,"ubig":"18446744073709551615","small":-5,"tags":["a","b"],' +
  '"counts":{"one":1,"two":2},"items":[{"name":"i"}]}');
let b;
for (let i = 0; i < 20000; i++) b = m.requestSerialize(v); // warm up the JIT
t = process.hrtime.bigint();
for (let i = 0; i < n; i++) b = m.requestSerialize(v);
const enc = Number(process.hrtime.bigint() - t) / n;
for (let i = 0; i < 20000; i++) m.requestDeserialize(b);
t = process.hrtime.bigint();
for (let i = 0; i < n; i++) m.requestDeserialize(b);
const dec = Number(process.hrtime.bigint() - t) / n;
console.log(JSON.stringify({ codec: 'protobufjs', bytes: b.length, encode_ns: Math.round(enc), decode_ns: Math.round(dec),
  parse_proto_us: Math.round(parseUs * 10) / 10 }));
