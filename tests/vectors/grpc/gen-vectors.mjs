// Writes codec.json next to this file: how @grpc/proto-loader (the loader NestJS's gRPC transport uses)
// turns JSON into protobuf bytes and bytes into JSON, for the .proto files of this folder, under several
// loader option sets. tests/unit/test_proto_codec.c replays every vector through nestc's codec.
//
// Each vector goes through proto-loader's own functions: the requestSerialize / requestDeserialize (or
// response*) of a method whose message is the type, i.e. Type.encode(Type.fromObject(json)) and
// Type.toObject(Type.decode(bytes), loaderOptions).
//
// Run from tests/interop (it needs @grpc/proto-loader there): node ../vectors/grpc/gen-vectors.mjs
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(process.cwd() + '/');
const protoLoader = require('@grpc/proto-loader');
const here = dirname(fileURLToPath(import.meta.url));

// Loader option sets. longs and bytes need a JSON form (their defaults, Long and Buffer, have none).
const OPTION_SETS = {
  // names as written, everything as text: what `nestc send grpc://` prints
  proto: { keepCase: true, longs: String, enums: String, bytes: String, oneofs: true, json: true },
  // NestJS's defaults (camelCase names, enums as numbers), longs as numbers and bytes as arrays
  nest: { longs: Number, bytes: Array },
  // every default filled in
  protoDefaults: {
    keepCase: true, longs: String, enums: String, bytes: String, defaults: true, arrays: true,
    objects: true, oneofs: true, json: true,
  },
  camelDefaults: { longs: Number, enums: String, bytes: String, defaults: true },
  listsOnly: { keepCase: true, longs: String, bytes: Array, arrays: true, objects: true },
};

const PROTOS = {
  'types.proto': ['nestc.types.Codec'],
  'conformance.proto': ['nestc.conformance.Conformance'],
  'legacy.proto': ['nestc.legacy.Legacy'],
};

function optionsJson(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) out[k] = v === String ? 'String' : v === Number ? 'Number' : v === Array ? 'Array' : v;
  return out;
}

const loaded = {};
function codecFor(proto, set, type) {
  const key = proto + '|' + set;
  if (!loaded[key]) {
    loaded[key] = protoLoader.loadSync(proto, {
      ...OPTION_SETS[set],
      includeDirs: [here, join(here, 'inc')],
    });
  }
  const pkg = loaded[key];
  for (const svc of PROTOS[proto]) {
    for (const m of Object.values(pkg[svc])) {
      if (m.requestType.type.name === type.split('.').pop() && pkg[type])
        return { ser: m.requestSerialize, de: m.requestDeserialize };
      if (m.responseType.type.name === type.split('.').pop() && pkg[type])
        return { ser: m.responseSerialize, de: m.responseDeserialize };
    }
  }
  throw new Error(`no method carries ${type}`);
}

// [name, proto, type, option set (keepCase decides the names read), JSON text]
const T = 'types.proto', C = 'conformance.proto', L = 'legacy.proto';
const S = 'nestc.types.Scalars', LI = 'nestc.types.Lists', M = 'nestc.types.Maps', O = 'nestc.types.Outer';
const ENCODE = [
  ['scalars.all', T, S, 'proto', `{"f_double":1.5,"f_float":0.1,"f_int64":"-9223372036854775808",
    "f_uint64":"18446744073709551615","f_int32":-1,"f_fixed64":"123","f_fixed32":4294967295,"f_bool":true,
    "f_string":"h\\u00e9llo \\u2713 \\ud83d\\ude00","f_bytes":"AAEC/w==","f_uint32":4294967295,"f_sfixed32":-2,
    "f_sfixed64":"-3","f_sint32":-2147483648,"f_sint64":"-9223372036854775808","f_enum":"KIND_B"}`],
  ['scalars.zero-values-written', T, S, 'proto', `{"f_double":0,"f_float":0,"f_int64":"0","f_uint64":0,
    "f_int32":0,"f_fixed64":0,"f_fixed32":0,"f_bool":false,"f_string":"","f_bytes":"","f_uint32":0,
    "f_sfixed32":0,"f_sfixed64":"0","f_sint32":0,"f_sint64":0,"f_enum":"KIND_UNKNOWN"}`],
  ['scalars.coercions', T, S, 'proto', `{"f_int32":"42","f_uint32":-1,"f_double":"1e3","f_bool":"x",
    "f_string":12.5,"f_int64":12345678901,"f_uint64":-5,"f_enum":2,"f_float":"Infinity","f_sint32":"-7",
    "f_fixed32":"0x10","f_sfixed32":3.9}`],
  ['scalars.wrap-and-clamp', T, S, 'proto', `{"f_int32":2147483648,"f_uint32":4294967297,"f_int64":1.9e19,
    "f_uint64":1e300,"f_sint64":-1e300,"f_double":"NaN","f_sint32":-2147483649}`],
  ['scalars.more-coercions', T, S, 'proto', `{"f_bool":0,"f_string":true,"f_int32":" 12 ","f_double":"",
    "f_uint32":"abc","f_fixed64":"18446744073709551617","f_sfixed64":-1,"f_float":1e40}`],
  ['scalars.bool-truthiness', T, S, 'proto', `{"f_bool":"false"}`],
  ['scalars.enum-number-unknown', T, S, 'proto', `{"f_enum":7}`],
  ['scalars.enum-negative', T, S, 'proto', `{"f_enum":"KIND_NEG"}`],
  ['scalars.enum-alias', T, S, 'proto', `{"f_enum":"KIND_BEE"}`],
  ['scalars.enum-unknown-name-dropped', T, S, 'proto', `{"f_enum":"NOPE","f_int32":1}`],
  ['scalars.unknown-and-null-members-ignored', T, S, 'proto', `{"nope":1,"f_string":"a","f_int32":null}`],
  ['scalars.camel-names', T, S, 'nest', `{"fDouble":2,"f_int32":5,"fInt64":"7","fString":"x"}`],
  ['scalars.bytes-array', T, S, 'proto', `{"f_bytes":[1,2,255,256,-1]}`],
  ['scalars.bytes-number-ignored', T, S, 'proto', `{"f_bytes":5,"f_bool":true}`],
  ['scalars.bytes-unpadded', T, S, 'proto', `{"f_bytes":"AAE"}`],
  ['scalars.int64-object', T, S, 'proto', `{"f_int64":{"low":1,"high":2},"f_uint64":{"low":-1,"high":-1}}`],
  ['scalars.empty', T, S, 'proto', `{}`],
  ['scalars.string-null-char', T, S, 'proto', `{"f_string":"a\\u0000b"}`],
  ['lists.all', T, LI, 'proto', `{"r_double":[1.5,-2],"r_float":[0.5],"r_int64":["1","-1"],
    "r_uint64":["18446744073709551615",3],"r_int32":[1,-1,300],"r_fixed64":[1],"r_fixed32":[2],
    "r_bool":[true,false,1],"r_string":["a","","b"],"r_bytes":["AQ==","",[7]],"r_uint32":[1],
    "r_sfixed32":[-1],"r_sfixed64":["-2"],"r_sint32":[-3,3],"r_sint64":["-4"],
    "r_enum":["KIND_A",2,"NOPE",-1],"r_msg":[{"f_int32":1},{}],"r_unpacked":[1,2,3]}`],
  ['lists.empty-and-falsy', T, LI, 'proto', `{"r_int32":[],"r_string":null,"r_msg":0,"r_bool":""}`],
  ['lists.not-an-array', T, LI, 'proto', `{"r_int32":5}`],
  ['lists.message-not-object', T, LI, 'proto', `{"r_msg":[1]}`],
  ['maps.all', T, M, 'proto', `{"m_str":{"b":"1","a":"2","10":"3","2":"4","01":"5"},
    "m_int":{"-1":"5","7":9},"m_enum":{"3":"KIND_A","1":2,"2":"NOPE"},
    "m_msg":{"x":{"f_int32":1},"y":{}},"m_bytes":{"-2":"AQI="},"m_fixed":{"4294967295":1.25},
    "m_bool":{"true":"t"}}`],
  ['maps.array-as-object', T, M, 'proto', `{"m_str":["a","b"]}`],
  ['maps.not-an-object', T, M, 'proto', `{"m_str":"a"}`],
  ['maps.empty', T, M, 'proto', `{"m_str":{},"m_int":null}`],
  ['longkeys.all', T, 'nestc.types.LongKeys', 'proto', `{"m_long":{"-9223372036854775808":"min","5":"five"},
    "m_ulong":{"18446744073709551615":1}}`],
  ['outer.nested', T, O, 'proto', `{"inner":{"camel_case_name":"n","next":{"next":{"level":"LEVEL_HIGH"}}},
    "pick_text":"t","maybe":0,"when":{"seconds":"1700000000","nanos":5},"shared":{"id":"s","tags":["a"]},
    "absolute":{"camel_case_name":"abs"},"snake_field_name":"snake","level":1,
    "children":[{"pick_long":"9"},{"children":[{}]}]}`],
  ['outer.two-oneof-members', T, O, 'proto', `{"pick_text":"t","pick_long":"5","pick_inner":{}}`],
  ['outer.oneof-virtual-ignored', T, O, 'proto', `{"pick":"pick_long","pick_long":3}`],
  ['outer.camel', T, O, 'nest', `{"inner":{"camelCaseName":"c"},"snakeFieldName":"s","pickText":"p","maybe":2}`],
  ['outer.message-not-object', T, O, 'proto', `{"inner":"x"}`],
  ['outer.message-array', T, O, 'proto', `{"inner":[1,2]}`],
  ['conformance.echo', C, 'nestc.conformance.EchoMessage', 'proto', `{"text":"hi","big":"9007199254740993",
    "flag":true,"numbers":[1,2,3],"nested":{"name":"n","value":1,"children":[{"name":"c"}]},"blob":"AQID",
    "color":"BLUE","choice_nested":{"name":"x"},"ratio":0.25,"ubig":"18446744073709551615","small":-5,
    "tags":["a","b"],"counts":{"one":1,"two":2},"items":[{"name":"i"}]}`],
  ['conformance.echo-camel', C, 'nestc.conformance.EchoMessage', 'nest', `{"choiceText":"t","big":5}`],
  ['conformance.sum', C, 'nestc.conformance.SumRequest', 'proto', `{"numbers":[1,2.5,-3]}`],
  ['conformance.context', C, 'nestc.conformance.ContextReply', 'proto',
    `{"metadata":{"x-trace":"t-1","x-bin":"AAE="},"method":"/nestc.conformance.Conformance/Context"}`],
  ['conformance.streaming', C, 'nestc.conformance.StreamingRequest', 'proto', `{"items":["a","b"],"delay_ms":5,"fail_after":1}`],
  ['conformance.empty-any', C, 'nestc.conformance.Empty', 'proto', `"whatever"`],
  ['conformance.empty-array', C, 'nestc.conformance.Empty', 'proto', `[]`],
  ['legacy.required-default', L, 'nestc.legacy.Record', 'proto', `{"name":"n","plain":[1,2],"packed":[3,4]}`],
  ['legacy.all', L, 'nestc.legacy.Record', 'proto', `{"id":7,"color":"GREEN","delta":"-1"}`],
];

// Bytes → JSON only: wire forms protobufjs reads that its encoder never writes. [name, proto, type, hex]
const DECODE = [
  ['lists.unpacked-wire-for-packed', T, LI, '280128022803'],
  ['lists.packed-wire-for-unpacked', T, LI, '920103010203'],
  ['lists.zero-length-packed', T, LI, '2a00'],
  ['scalars.duplicate-last-wins', T, S, '28012802'],
  ['outer.message-replaced-not-merged', T, O, '0a030a01610a0412020a00'],
  ['scalars.unknown-fields-skipped', T, S, 'f806018a07020102f50601000000f1060102030405060708a3010801a4012807'],
  ['scalars.enum-unknown-number', T, S, '800107'],
  ['scalars.bool-varint-2', T, S, '4002'],
  ['scalars.bool-varint-2pow32', T, S, '408080808010'],
  ['scalars.int32-ten-byte-negative', T, S, '28ffffffffffffffffff01'],
  ['scalars.int32-from-64bit-varint', T, S, '2880808080f0ffffffff01'],
  ['scalars.uint32-ten-byte-varint', T, S, '58ffffffffffffffffff01'],
  ['scalars.invalid-utf8', T, S, '4a0561ff62c0e2'],
  ['scalars.float-nan-inf', T, S, '150000c07f0900000000 0000f0ff'.replace(/ /g, '')],
  ['scalars.double-neg-zero', T, S, '090000000000000080'],
  ['maps.entry-without-key', T, M, '0a03120178'],
  ['maps.entry-without-value', T, M, '0a030a0178'],
  ['maps.msg-entry-without-value', T, M, '22030a0178'],
  ['maps.duplicate-key-last-wins', T, M, '0a060a016b1201310a060a016b120132'],
  ['maps.entry-unknown-field', T, M, '0a080a016b12017618 01'.replace(/ /g, '')],
  ['maps.bool-keys', T, M, '3a050800120166 3a050801120174'.replace(/ /g, '')],
  ['outer.oneof-two-members-on-wire', T, O, '120174 2005'.replace(/ /g, '')],
  ['outer.optional-zero', T, O, '2800'],
  ['legacy.missing-required', L, 'nestc.legacy.Record', '120161'],
  ['legacy.present', L, 'nestc.legacy.Record', '0801'],
  ['conformance.echo-empty', C, 'nestc.conformance.EchoMessage', ''],
  ['error.truncated-varint', T, S, '28ff'],
  ['error.truncated-length', T, S, '4a05616263'],
  ['error.bad-wire-type', T, S, 'a701'],
  ['error.unterminated-group', T, S, 'fb0601'],
];

function run(fn) {
  try {
    return { ok: fn() };
  } catch (e) {
    return { error: String(e && e.message) };
  }
}

const out = {
  generator: 'tests/vectors/grpc/gen-vectors.mjs',
  versions: {
    '@grpc/proto-loader': require('@grpc/proto-loader/package.json').version,
    protobufjs: require('protobufjs/package.json').version,
  },
  option_sets: Object.fromEntries(Object.entries(OPTION_SETS).map(([k, v]) => [k, optionsJson(v)])),
  encode: [],
  decode: [],
};

const decodeAll = (name, proto, type, hex) => {
  for (const set of Object.keys(OPTION_SETS)) {
    const { de } = codecFor(proto, set, type);
    const r = run(() => de(Buffer.from(hex, 'hex')));
    // JSON.stringify is how the decoded object becomes text (NaN and infinities turn into null)
    if (r.ok !== undefined) out.decode.push({ name, proto, type, opts: set, hex, json: JSON.parse(JSON.stringify(r.ok)) });
    else out.decode.push({ name, proto, type, opts: set, hex, error: r.error });
  }
};

for (const [name, proto, type, set, text] of ENCODE) {
  const { ser } = codecFor(proto, set, type);
  const r = run(() => Buffer.from(ser(JSON.parse(text))).toString('hex'));
  if (r.ok !== undefined) {
    out.encode.push({ name, proto, type, opts: set, json_text: text.replace(/\n\s*/g, ''), hex: r.ok });
    if (type !== 'nestc.types.LongKeys') decodeAll(name, proto, type, r.ok);
  } else out.encode.push({ name, proto, type, opts: set, json_text: text.replace(/\n\s*/g, ''), error: r.error });
}
for (const [name, proto, type, hex] of DECODE) decodeAll(name, proto, type, hex);

writeFileSync(join(here, 'codec.json'), JSON.stringify(out, null, 1) + '\n');
console.log(`codec.json: ${out.encode.length} encode and ${out.decode.length} decode vectors`);
