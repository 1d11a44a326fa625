// mqtt-large.mjs --driver nest|cli --url mqtt://H:P[?protocolVersion=5] — run by with-server.sh (nest or
// nestc conformance server on that broker): requests and replies of about 1 MB each through the broker, the
// value coming back exactly equal. mosquitto's default message_size_limit (0) accepts any MQTT message up to
// MQTT's own limit (268,435,455 bytes), so 1 MB is well inside.
// The values stress what a large body can break: every BMP code point outside the surrogates (multi-byte
// UTF-8, so bytes ≠ characters), JSON escapes (control characters, quotes, backslashes) and surrogate pairs
// spread over the whole body; numbers whose text must survive exactly; a deep-ish object of many keys.
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import { makeDriver } from './drivers.mjs';
import { scaled } from './timing.mjs';

const { values: args } = parseArgs({ options: { driver: { type: 'string', default: 'nest' }, url: { type: 'string' } } });
if (!args.url) {
  console.error('usage: node mqtt-large.mjs --driver nest|cli --url mqtt://H:P[?protocolVersion=5]');
  process.exit(2);
}
const driver = makeDriver(args.driver, args.url, {});
const MB = 1024 * 1024;
const bytes = (v) => Buffer.byteLength(JSON.stringify(v));

// A deterministic generator, so a failure can be reproduced.
let seed = 12345;
const rnd = (n) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};

function mixedString(target) {
  const parts = [];
  let n = 0;
  while (n < target) {
    let s;
    switch (rnd(6)) {
      case 0: s = String.fromCharCode(rnd(32)); break; // control characters: \u00XX escapes, \n, \t ...
      case 1: s = '"\\/'[rnd(3)]; break;
      case 2: s = String.fromCodePoint(0x80 + rnd(0xd800 - 0x80)); break; // 2- and 3-byte UTF-8
      case 3: s = String.fromCodePoint(0xe000 + rnd(0x10000 - 0xe000)); break; // above the surrogates
      case 4: s = String.fromCodePoint(0x10000 + rnd(0x100000)); break; // 4-byte UTF-8, a surrogate pair
      default: s = 'abcdefghij'.slice(0, 1 + rnd(10));
    }
    parts.push(s);
    n += Buffer.byteLength(JSON.stringify(s)) - 2;
  }
  return parts.join('');
}

// (sizes are added up as the values grow: stringifying the whole value each time would be quadratic)
const numbers = [];
for (let n = 2; n < MB; ) {
  const k = rnd(5);
  const x =
    k === 0 ? rnd(2 ** 31) - 2 ** 30
    : k === 1 ? Number.MAX_SAFE_INTEGER - rnd(1000)
    : k === 2 ? rnd(1e6) / 1e3 + 0.1
    : k === 3 ? ((rnd(2) ? 1 : -1) * 1.7976931348623157e308) / (1 + rnd(1e6))
    : 5e-324 * (1 + rnd(1000));
  numbers.push(x);
  n += bytes(x) + 1;
}

const object = {};
for (let i = 0, n = 2; n < MB; i++) {
  const k = `k${i}\u00e9`;
  object[k] = { i, s: `v${i}`, a: [i % 2 === 0, null, { deep: [i] }] };
  n += bytes(k) + bytes(object[k]) + 2;
}

const cases = [
  ['1 MB string of mixed characters', mixedString(MB)],
  ['1 MB array of numbers', numbers],
  ['1 MB object', object],
];
let failed = 0;
for (const [what, value] of cases) {
  const size = bytes(value);
  assert.ok(size >= MB && size < 1.2 * MB, `${what}: ${size} bytes`);
  const t0 = Date.now();
  const r = await driver.send('echo', value, { timeoutMs: scaled(60000) });
  try {
    assert.equal(r.error ?? r.failure, undefined, JSON.stringify(r.error ?? r.failure));
    assert.equal(r.values.length, 1, `${r.values.length} replies`);
    assert.deepStrictEqual(r.values[0], value);
    assert.equal(bytes(r.values[0]), size);
    console.log(`ok: echo ${what} (${size} bytes of JSON each way, ${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL: echo ${what} (${size} bytes): ${e.message.slice(0, 500)}`);
  }
}
await driver.close();
process.exit(failed ? 1 : 0);
