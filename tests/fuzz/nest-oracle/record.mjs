// Records NestJS's accept/refuse rule for JSON text into vectors.json: each input goes through what a
// NestJS transport does with a packet's bytes (decode as UTF-8, invalid sequences becoming U+FFFD, then
// JSON.parse) and, when accepted, through JSON.stringify, which is how NestJS writes every value back.
// tests/unit/test_json_oracle.c replays the file through nestc's parser and writer; fuzz_nest_oracle
// seeds from it. Run with any Node.js: `node record.mjs` (rewrites vectors.json next to this file).
// Optional: NEST_ORACLE_TCP=host:port also sends each accepted input, byte for byte, as the data of an
// `echo` request to a running NestJS (or nestc) TCP server and checks that the echo equals the
// JSON.stringify output recorded.
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';

const b = (s) => Buffer.from(s, 'latin1'); // raw bytes, for ill-formed UTF-8
const t = (s) => Buffer.from(s, 'utf8');

// [name, input bytes] or [name, {deep}] where deep = {prefix, open, n, inner, close, suffix}: the text is
// prefix + open*n + inner + close*n + suffix (kept compact in the file).
const inputs = [
  // lone and paired UTF-16 surrogates (escapes; raw surrogate bytes are ill-formed UTF-8, see below)
  ['surrogate high lone at end', t('"ab\\ud83d"')],
  ['surrogate high lone', t('"\\ud83d"')],
  ['surrogate low lone', t('"\\ude00"')],
  ['surrogate high lone uppercase', t('"\\uD83D"')],
  ['surrogate pair', t('"\\ud83d\\ude00"')],
  ['surrogate pair uppercase', t('"\\uD83D\\uDE00"')],
  ['surrogate pair reversed', t('"\\ude00\\ud83d"')],
  ['surrogate high high low', t('"\\ud83d\\ud83d\\ude00"')],
  ['surrogate last high', t('"x\\udbff"')],
  ['surrogate two lows', t('"\\udfff\\udfff"')],
  ['surrogate first high', t('"\\ud800"')],
  ['surrogate first low', t('"\\udc00"')],
  ['surrogate in object value', t('{"k":"\\ud800"}')],
  ['surrogate in key', t('{"\\ud800":1}')],
  ['surrogate halves in two strings', t('["\\ud83d","\\ude00"]')],
  ['surrogate then letter escape', t('"\\ud83d\\u0041"')],
  ['surrogate high, char, low', t('"\\ud83dx\\ude00"')],
  ['surrogate boundaries', t('"\\ud7ff\\ue000"')],
  ['surrogate then escaped backslash', t('"\\ud83d\\\\ude00"')],
  ['surrogate raw emoji', t('"😀"')],
  ['surrogate raw emoji and lone', t('"😀\\ud83d"')],
  ['surrogate request envelope', t('{"pattern":{"cmd":"echo"},"data":"ab\\ud83d","id":"x"}')],
  ['surrogate in pattern', t('{"pattern":"\\udc00","data":1}')],
  // nesting
  ['deep arrays 100', { open: '[', n: 100, inner: '', close: ']' }],
  ['deep arrays 2048', { open: '[', n: 2048, inner: '', close: ']' }],
  ['deep arrays 2049', { open: '[', n: 2049, inner: '1', close: ']' }],
  ['deep arrays 2100', { open: '[', n: 2100, inner: '', close: ']' }],
  ['deep arrays 3000', { open: '[', n: 3000, inner: '"x"', close: ']' }],
  ['deep objects 2100', { open: '{"a":', n: 2100, inner: '1', close: '}' }],
  ['deep mixed 3000', { open: '[{"a":', n: 1500, inner: 'null', close: '}]' }],
  ['deep arrays 5000', { open: '[', n: 5000, inner: '', close: ']' }],
  ['deep arrays 10000', { open: '[', n: 10000, inner: '', close: ']' }],
  ['deep arrays 10001', { open: '[', n: 10001, inner: '', close: ']' }],
  ['deep arrays 100000', { open: '[', n: 100000, inner: '', close: ']' }],
  ['deep in envelope', { prefix: '{"pattern":"echo","data":', open: '[', n: 3000, inner: '', close: ']', suffix: ',"id":"d"}' }],
  ['deep unclosed', { open: '[', n: 3000, inner: '', close: '' }],
  ['deep one extra close', { open: '[', n: 3000, inner: '', close: ']', suffix: ']' }],
  // numbers
  ['number 1e400', t('1e400')],
  ['number -1e400', t('-1e400')],
  ['number 1E400', t('1E400')],
  ['number 1e+400', t('1e+400')],
  ['number 1e400 in array', t('[1e400,1]')],
  ['number 1e400 as id', t('{"pattern":"sum","data":[1],"id":1e400}')],
  ['number max double', t('1.7976931348623157e308')],
  ['number just past max double', t('1.7976931348623159e308')],
  ['number 1e308', t('1e308')],
  ['number 1e-400', t('1e-400')],
  ['number -1e-400', t('-1e-400')],
  ['number min subnormal', t('5e-324')],
  ['number below min subnormal', t('2e-324')],
  ['number 21 digits', t('123456789012345678901')],
  ['number int64 max', t('9223372036854775807')],
  ['number int64 max + 1', t('9223372036854775808')],
  ['number int64 min', t('-9223372036854775808')],
  ['number int64 min - 1', t('-9223372036854775809')],
  ['number 2^53 + 1', t('9007199254740993')],
  ['number 400 digits', t('1' + '0'.repeat(400))],
  ['number 0.1e1', t('0.1e1')],
  ['number -0', t('-0')],
  ['number -0.0', t('-0.0')],
  ['number 100e-2', t('100e-2')],
  ['number 1e21', t('1e21')],
  ['number 1e-7', t('1e-7')],
  ['number 0.000001', t('0.000001')],
  ['number 01', t('01')],
  ['number 1.', t('1.')],
  ['number .5', t('.5')],
  ['number +1', t('+1')],
  ['number -', t('-')],
  ['number 1e', t('1e')],
  ['number NaN', t('NaN')],
  ['number Infinity', t('Infinity')],
  ['number hex', t('0x10')],
  // whitespace
  ['ws all four', t(' \t\n\r 1 \n')],
  ['ws around structure', t(' [ 1 , { "a" : 2 } ] ')],
  ['ws no-break space', t('\u00a01')],
  ['ws byte order mark', t('\ufeff1')],
  ['ws vertical tab', t('\v1')],
  ['ws form feed', t('\f1')],
  ['ws line separator outside', t('\u20281')],
  ['ws line separator in string', t('"a\u2028b\u2029"')],
  ['ws NUL after value', b('1\0')],
  // duplicate and odd keys
  ['keys duplicate', t('{"a":1,"a":2}')],
  ['keys duplicate keeps first position', t('{"a":1,"b":2,"a":3}')],
  ['keys empty', t('{"":1}')],
  ['keys __proto__', t('{"__proto__":1}')],
  ['keys NUL escape', t('{"\\u0000":1}')],
  ['keys escaped name', t('{"p\\u0061ttern":"x","data":1}')],
  ['keys integer-like after others', t('{"a":1,"1":2}')],
  // ill-formed UTF-8 (NestJS decodes it to U+FFFD first)
  ['utf8 lone 0xff', b('"\xff"')],
  ['utf8 overlong slash', b('"\xc0\xaf"')],
  ['utf8 raw surrogate', b('"\xed\xa0\x80"')],
  ['utf8 truncated emoji', b('"\xf0\x9f\x98"')],
  ['utf8 latin-1 e-acute', b('"caf\xe9"')],
  ['utf8 valid two-byte', t('"café"')],
  ['utf8 above U+10FFFF', b('"\xf4\x90\x80\x80"')],
  // escapes
  ['escape solidus', t('"\\/"')],
  ['escape all named', t('"\\b\\f\\n\\r\\t\\"\\\\"')],
  ['escape NUL', t('"a\\u0000b"')],
  ['escape control', t('"\\u001f\\u0001"')],
  ['escape e-acute', t('"\\u00E9"')],
  ['escape U+FFFF', t('"\\uFFFF"')],
  ['escape U+2028', t('"\\u2028"')],
  ['escape x41', t('"\\x41"')],
  ['escape quote', t('"\\\'"')],
  ['escape short u', t('"\\u12"')],
  ['escape upper U', t('"\\U0041"')],
  ['escape u non-hex', t('"\\u12g4"')],
  ['raw tab in string', t('"a\tb"')],
  ['raw DEL in string', t('"a\x7fb"')],
  ['raw newline in string', t('"a\nb"')],
  // syntax
  ['syntax trailing comma array', t('[1,]')],
  ['syntax trailing comma object', t('{"a":1,}')],
  ['syntax empty', t('')],
  ['syntax only space', t(' ')],
  ['syntax two values', t('1 2')],
  ['syntax unclosed array', t('[')],
  ['syntax lone close', t(']')],
  ['syntax missing colon', t('{"a" 1}')],
  ['syntax bare key', t('{a:1}')],
  ['syntax single quotes', t("'x'")],
  ['syntax unterminated string', t('"abc')],
  ['syntax true', t('true')],
  ['syntax tru', t('tru')],
  ['syntax null', t('null')],
  ['syntax nul', t('nul')],
  ['syntax missing comma', t('[1 2]')],
  ['syntax empty containers', t('[{},[],""]')],
];

function text(input) {
  if (Buffer.isBuffer(input)) return input;
  const d = input;
  return t((d.prefix ?? '') + d.open.repeat(d.n) + d.inner + d.close.repeat(d.n) + (d.suffix ?? ''));
}

const vectors = [];
for (const [name, input] of inputs) {
  const bytes = text(input);
  const v = { name };
  if (Buffer.isBuffer(input)) v.input_hex = bytes.toString('hex');
  else v.deep = input;
  let value;
  try {
    // what a NestJS transport does with a packet's bytes: UTF-8 decoding, then JSON.parse
    value = JSON.parse(bytes.toString('utf8'));
    v.accept = true;
  } catch (e) {
    v.accept = false;
  }
  if (v.accept) {
    try {
      const out = JSON.stringify(value);
      if (!Buffer.isBuffer(input) && out === bytes.toString('utf8')) v.output_is_input = true;
      else v.output = out === undefined ? null : out;
    } catch (e) {
      // JSON.parse takes any depth, but JSON.stringify recurses: a few thousand levels exhaust V8's stack
      v.stringify_error = `${e.constructor.name}: ${e.message}`;
    }
  }
  vectors.push(v);
}

async function tcpCheck(hostport) {
  const [host, port] = hostport.split(':');
  for (const v of vectors) {
    if (!v.accept || v.stringify_error) continue;
    // the bytes as they are (ill-formed UTF-8 included), with the length NestJS counts once it decoded them
    const raw = text(v.deep ?? Buffer.from(v.input_hex, 'hex'));
    const data = raw.toString('utf8');
    const body = Buffer.concat([Buffer.from('{"pattern":"echo","data":'), raw, Buffer.from(',"id":"o"}')]);
    const got = await new Promise((resolve, reject) => {
      const s = connect(Number(port), host, () => s.write(Buffer.concat([Buffer.from(`${body.toString().length}#`), body])));
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d) => {
        buf += d;
        const i = buf.indexOf('#');
        if (i > 0 && buf.length - i - 1 >= Number(buf.slice(0, i))) {
          s.destroy();
          resolve(JSON.parse(buf.slice(i + 1, i + 1 + Number(buf.slice(0, i)))));
        }
      });
      s.on('error', reject);
      s.setTimeout(5000, () => {
        s.destroy();
        resolve(undefined);
      });
    });
    const echoed = got && JSON.stringify(got.response);
    const want = JSON.stringify(JSON.parse(data));
    if (echoed !== want) console.error(`${v.name}: NestJS echoed ${echoed?.slice(0, 80)}, JSON.stringify gives ${want?.slice(0, 80)}`);
  }
}

if (process.env.NEST_ORACLE_TCP) await tcpCheck(process.env.NEST_ORACLE_TCP);

const file = new URL('./vectors.json', import.meta.url);
const doc = {
  about: 'NestJS accept rule: UTF-8 decoding (U+FFFD for ill-formed bytes), JSON.parse, JSON.stringify. ' +
    'Recorded by record.mjs with Node.js ' + process.version + '. input_hex: the bytes; deep: prefix + ' +
    'open*n + inner + close*n + suffix; output: JSON.stringify of the parsed value (when accepted; ' +
    'output_is_input: the same text as the input; stringify_error: JSON.stringify threw, as it does ' +
    'past a few thousand levels).',
  vectors,
};
writeFileSync(file, JSON.stringify(doc, null, 1) + '\n');
console.log(`${vectors.length} vectors, ${vectors.filter((v) => v.accept).length} accepted`);
