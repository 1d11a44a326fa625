// Generates routes.tsv, the reference table for tests/unit/test_route.c, by running NestJS's own
// transformPatternToRoute (@nestjs/microservices utils/transform-pattern.utils.js) over a fixed,
// deterministic set of patterns.
//
// To regenerate (Node 20 or later):
//   cd "$(mktemp -d)" && npm init -y && npm install @nestjs/microservices@12.1.1 @nestjs/common@12.5.1 \
//       @nestjs/core@12.5.1 rxjs@7.8.2 reflect-metadata
//   node tests/unit/data/gen-routes.mjs <that directory> > tests/unit/data/routes.tsv
// (the argument may be the directory that holds node_modules/ or the node_modules/ directory itself).
//
// Format: one row per pattern, `<pattern as JSON.stringify writes it>` TAB `<route>`, UTF-8, LF line ends,
// no header. The route is taken for JSON.parse(<first column>), i.e. for exactly the value a C reader of
// the first column holds. Routes do not escape control characters, so the patterns contain none: no
// escaping of the TSV is needed (the script checks that neither column holds a tab, CR or LF). Patterns
// whose route is not a string (top-level true/false/null) are not listed; test_route.c covers them.
// Output depends only on this script and the NestJS version (seeded PRNG), so reruns are byte-identical.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = process.argv[2];
if (!arg) {
  console.error('usage: node gen-routes.mjs <dir with node_modules/@nestjs/microservices>');
  process.exit(2);
}
const rel = join('@nestjs', 'microservices', 'utils', 'transform-pattern.utils.js');
const candidates = [join(resolve(arg), 'node_modules', rel), join(resolve(arg), rel)];
const file = candidates.find(existsSync);
if (!file) {
  console.error(`transform-pattern.utils.js not found under ${arg}`);
  process.exit(2);
}
// @nestjs/common's decorators need the Reflect metadata polyfill loaded first, as in any Nest app.
createRequire(file)('reflect-metadata');
const { transformPatternToRoute } = await import(pathToFileURL(file).href);

// mulberry32: small deterministic PRNG.
let seed = 0x6e657374; // "nest"
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (n) => Math.floor(rand() * n);

const rows = [];
const seen = new Set();
// `text` is the pattern's JSON text; the route is computed from what JSON.parse makes of it.
function addText(text) {
  if (seen.has(text)) return;
  const route = transformPatternToRoute(JSON.parse(text));
  if (typeof route !== 'string') return;
  for (const col of [text, route]) {
    if (/[\t\r\n]/.test(col)) throw new Error(`tab or line break in ${JSON.stringify(col)}`);
  }
  if (/[\u0000-\u001f]/.test(route)) throw new Error(`control character in route ${JSON.stringify(route)}`);
  seen.add(text);
  rows.push(`${text}\t${route}`);
}
const add = (p) => addText(JSON.stringify(p));
// Builds an object from [key, value] pairs in this order (safe for keys such as "__proto__").
const obj = (pairs) => JSON.parse(`{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);

// ---- fixed cases: spec §3.1 table and boundaries -------------------------------------------------
add('sum');
add(42);
add({ cmd: 'sum' });
add({ role: 'math', cmd: 'sum' });
add({ cmd: 'sum', role: 'math' });
add({ b: 1, a: 'x', c: { z: 1, y: [2, 1] } });
add({ s: 'x', n: 1, t: true, nul: null, arr: [1, 'a'], o: {} });
add({ 'k"ey': 'va"l\\ue' });
add({ a: { b: { c: { d: { e: { f: { g: 1 } } } } } } });
add({ a: { b: { c: { d: { e: { f: 1 } } } } } });
add({ a: { b: { c: { d: { e: { f: {} } } } } } });
add({ a: { b: { c: { d: { e: { f: [] } } } } } });
add({ a: { b: { c: { d: { e: { f: 'deep string', g: 7, h: null } } } } } });
add([[[[[[[1]]]]]]]);
add([[[[[[1]]]]]]);
add({});
add([]);
add({ '': 1 });
add({ '': '', a: '' });
add({ v: 2, cmd: 'sorted', role: 'math' });
for (const n of [19, 20, 21, 25]) {
  const o = {};
  for (let i = 0; i < n; i++) o[`k${String.fromCharCode(65 + (i % 26))}${i}`] = i;
  add(o);
  add({ outer: o, z: 1 });
  add(Array.from({ length: n }, (_, i) => i * 3));
}
add(Array.from({ length: 12 }, (_, i) => `v${i}`)); // index keys sort as strings: 0, 1, 10, 11, 2 ...
add({ list: Array.from({ length: 11 }, (_, i) => i) });
add({ 10: 'a', 9: 'b', 1: 'c', x: 'd', '01': 'e', '-1': 'f', 4294967295: 'g', 4294967294: 'h' });
addText('{"__proto__":1,"constructor":2,"toString":"x"}');

// ---- top-level strings and numbers -----------------------------------------------------------------
for (const s of ['user_created', 'notification', 'a"b', 'c\\d', '\\"', '', ' ', '{not json', '42', 'true',
  'null', '{"cmd":"sum"}', 'math.sum', 'a/b/+/#', '日本語', 'é', '😀', 'x\u2028y'])
  add(s);
for (const n of [0, -0, 1, -1, 7, 100, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53, -(2 ** 53), 2 ** 53 + 2, 2 ** 63,
  -(2 ** 63), 2 ** 64, 0.1, -0.1, 0.5, 1.5, 3.14159, 1 / 3, 2 / 3, 1e20, 1e21, -1e21, 1.5e300, 1e-6, 1e-7,
  1.5e-7, 123e-20, 123456789012345680000, 5e-324, 1.7976931348623157e308, 4.35, 0.000001234, 100.25])
  add(n);
addText('1E3');
addText('-0.0');
addText('12345678901234567890123');
addText('9007199254740993');

// ---- keys: punctuation, case, digits, unicode ------------------------------------------------------
const punct = [];
for (let c = 0x20; c < 0x7f; c++) {
  const ch = String.fromCharCode(c);
  if (!/[A-Za-z0-9]/.test(ch)) punct.push(ch);
}
// every printable punctuation character (and space) as a key, in blocks of at most 20 keys
for (let i = 0; i < punct.length; i += 11) {
  const block = punct.slice(i, i + 11);
  add(obj(block.map((ch, j) => [ch, j])));
  add(obj(block.map((ch, j) => [`a${ch}b`, block.length - j])));
  add(obj(block.map((ch) => [`${ch}x`, ch])));
}
add(obj(punct.slice(0, 16).map((ch) => [ch + ch, `${ch}v${ch}`])));
add(obj(['a', 'A', 'b', 'B', '_', '-', '1', '10', '2', 'é', 'e', 'E', 'f'].map((k, i) => [k, i])));
add(obj(['_x', '1', '10', '2', 'a', 'A', 'b', 'B', 'e', 'é', 'f'].reverse().map((k, i) => [k, i])));
add(obj(['Ab', 'aB', 'ab', 'a-b', 'a_b'].map((k, i) => [k, i])));
add(obj(['AB', 'Ab', 'aB', 'ab', 'ABC', 'abc', 'aBc', 'abC', 'ABc'].map((k, i) => [k, i])));
add(obj(['a', 'aa', 'aA', 'Aa', 'AA', 'A', 'a a', 'a-a', 'a_a', 'a.a'].map((k, i) => [k, i])));
add(obj(['id', 'ID', 'Id', 'iD', 'i_d', 'i-d', 'i.d', 'i d', 'i', 'I'].map((k, i) => [k, i])));
add(obj(['cmd', 'Cmd', 'CMD', 'cmd2', 'cmd10', 'cmd_', 'cmd-', 'cmd.', '_cmd', '-cmd'].map((k, i) => [k, i])));
add(obj(['0', '00', '01', '1', '1a', '1A', 'a1', 'A1', '9', '90', '-9', '+9', '.9'].map((k, i) => [k, i])));
add(obj(['Zeta', 'alpha', 'Beta', 'gamma', 'DELTA', 'epsilon'].map((k, i) => [k, k.toLowerCase()])));
const uni = ['é', 'É', 'e', 'E', 'f', 'è', 'ê', 'ß', 'ss', 'SS', 'st', 'ñ', 'n', 'o', 'ø', 'Å', 'a', 'z', 'æ',
  'ae', '日本', '日', '中', 'Ω', 'ω', 'я', 'Я', 'ü', 'u', 'ue'];
for (let i = 0; i < uni.length; i += 10) add(obj(uni.slice(i, i + 10).map((k, j) => [k, j])));
add(obj(uni.slice(0, 20).reverse().map((k, j) => [k, `${k}!`])));
add(obj([['café', 1], ['cafe', 2], ['Café', 3], ['cafés', 4], ['cafe_', 5]]));
add(obj([['日本', 'にほん'], ['日本語', 'ja'], ['にほん', 1], ['ニホン', 2], ['Nihon', 3], ['nihon', 4]]));
// keys that collate equal: Array.prototype.sort is stable, so Object.keys order decides
add(obj([['e\u0301', 1], ['é', 2]]));
add(obj([['é', 1], ['e\u0301', 2]]));
add(obj([['1\u00ad', 'soft'], ['1', 'plain']]));
add(obj([['x\u00ad', 'soft'], ['x', 'plain'], ['\u00adx', 'lead']]));

// ---- values: escaping, numbers, nesting ------------------------------------------------------------
add({ q: 'say "hi"', b: 'back\\slash', both: '\\"', end: 'ends with \\', quote: '"' });
add({ 'k\\': 'v', 'k"': 'w', '\\"': '"\\', '"': '\\' });
add({ path: 'C:\\dir\\file', json: '{"a":1}', u: '\\u00e9' });
add({ n: -1.5, e: 1e21, s: 1e-7, z: 0, m: -0, big: 2 ** 64, small: 5e-324, i: 2 ** 53 });
addText('{"big":123456789012345680000,"n":1}');
addText('{"neg":-12345678901234567890123,"list":[1,2.5,3]}');
add({ t: true, f: false, n: null, nested: [true, false, null, 'true', 'null'] });
add({ a: [], b: {}, c: [[]], d: [{}], e: [{ x: [] }] });
add({ matrix: [[1, 2], [3, 4]], tags: ['x', 'y', 'x'] });
add([{ b: 1, a: 2 }, { B: 1, A: 2 }, 'str', 3, null]);
add({ unicode: 'é日本😀', emoji: '😀', 'ключ': 'значение', '😀': 'key' });

// ---- random objects --------------------------------------------------------------------------------
const keyPool = ['cmd', 'role', 'action', 'Action', 'ACTION', 'type', 'Type', 'v', 'V', 'id', 'Id', 'user_id',
  'user-id', 'userId', 'user.id', 'user id', 'x', 'X', 'x1', 'x10', 'x2', 'X1', '1', '2', '10', '0', '_', '__',
  '$ref', '@type', '#tag', 'a+b', 'a=b', 'a<b', 'a>b', 'a|b', 'a~b', 'a^b', 'a`b', 'a%b', 'a&b', 'a*b', 'a/b',
  'a\\b', 'a"b', "a'b", 'a(b', 'a)b', 'a[b', 'a]b', 'a{b', 'a}b', 'a!b', 'a?b', 'a:b', 'a;b', 'a,b', 'a.b',
  'a b', ' a', 'a ', 'é', 'ß', '日本', 'Zz', 'zZ', 'zz', 'ZZ', 'abc', 'aBc', 'abC', 'Abc', 'ab', 'aB', 'Ab', 'AB',
  'a', 'A', 'b', 'B', ''];
const strPool = ['sum', 'Sum', 'math', 'a"b', 'c\\d', '\\', '"', '', ' ', 'é', '日本', 'x y', '{}', '[1]', 'null',
  'true', '42', 'a,b', 'a:b', '😀'];
const numPool = [0, 1, -1, 42, -42, 0.5, -0.25, 1e21, 1e-7, 123.456, 2 ** 53, 2 ** 60, 1e100, -1e-100, 3.5e-5];
function randValue(depth) {
  const r = rand();
  if (depth < 8 && r < 0.15) return randObject(depth + 1);
  if (depth < 8 && r < 0.22) return Array.from({ length: int(5) }, () => randValue(depth + 1));
  if (r < 0.55) return pick(strPool);
  if (r < 0.85) return pick(numPool);
  return pick([true, false, null]);
}
function randObject(depth) {
  const n = rand() < 0.05 ? 21 + int(3) : 1 + int(rand() < 0.3 ? 20 : 6);
  const pairs = [];
  const used = new Set();
  while (pairs.length < n) {
    let k = pick(keyPool);
    if (rand() < 0.2) k += pick(keyPool);
    if (used.has(k)) continue;
    used.add(k);
    pairs.push([k, randValue(depth)]);
  }
  return obj(pairs);
}
// random printable-ASCII keys: the collation table's hardest cases are long shared prefixes and case
function randKey() {
  const alpha = 'aAbBzZ09_-.~ "\\';
  let s = '';
  const len = 1 + int(5);
  for (let i = 0; i < len; i++) s += rand() < 0.8 ? alpha[int(alpha.length)] : String.fromCharCode(0x20 + int(95));
  return s;
}
while (rows.length < 330) add(randObject(0));
while (rows.length < 400) {
  const pairs = [];
  const used = new Set();
  const n = 2 + int(10);
  while (pairs.length < n) {
    const k = randKey();
    if (!used.has(k)) {
      used.add(k);
      pairs.push([k, pairs.length]);
    }
  }
  add(obj(pairs));
}

process.stdout.write(rows.join('\n') + '\n');
