// [data] from a file (@FILE) and from standard input (@-), beyond the size of one command-line argument
// (about 128 KiB on Linux): 1 MiB of data through a TCP conformance server; `send --stream` reads
// several JSON values and sends them as a client stream, which TCP does not have: a clear message, exit 2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nestc, startNestc } from './cli-lib.mjs';

let srv;
let url;
let dir;
const numbers = Array.from({ length: 170000 }, (_, i) => i); // about 1 MiB of JSON
const bigText = JSON.stringify(numbers);
const bigSum = (numbers.length * (numbers.length - 1)) / 2;

before(async () => {
  srv = await startNestc();
  url = `tcp://127.0.0.1:${srv.port}`;
  dir = mkdtempSync(join(tmpdir(), 'nestc-cli-'));
  writeFileSync(join(dir, 'big.json'), bigText);
  writeFileSync(join(dir, 'bad.json'), '[1,');
});
after(async () => {
  assert.equal(await srv.stop(), 0);
  rmSync(dir, { recursive: true, force: true });
});

test('[data] @FILE: 1 MiB read from a file', async () => {
  assert.ok(bigText.length > 1024 * 1024);
  const r = await nestc(['send', url, 'sum', `@${join(dir, 'big.json')}`]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `${bigSum}\n`);
  const e = await nestc(['send', url, 'echo', `@${join(dir, 'big.json')}`]);
  assert.equal(e.code, 0, e.err);
  assert.equal(e.out, `${bigText}\n`);
});

test('[data] @-: 1 MiB read from standard input', async () => {
  const r = await nestc(['send', url, 'sum', '@-'], { input: bigText });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `${bigSum}\n`);
  const ev = await nestc(['emit', url, 'user_created', '@-'], { input: '{"id":7}' });
  assert.equal(ev.code, 0, ev.err);
});

test('[data] @FILE that cannot be read or is not JSON: exit 2 naming the file', async () => {
  let r = await nestc(['send', url, 'sum', `@${join(dir, 'none.json')}`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot read data file .*none\.json: No such file/);
  r = await nestc(['send', url, 'sum', `@${join(dir, 'bad.json')}`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.json is not valid JSON/);
  // a JSON string starting with @ is written as JSON: nothing to escape
  r = await nestc(['send', url, 'echo', '"@x"']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, '"@x"\n');
});

test('bench reads its data with @FILE and --data-file', async () => {
  for (const data of [[`@${join(dir, 'big.json')}`], ['--data-file', join(dir, 'big.json')]]) {
    const r = await nestc(['bench', url, 'sum', ...data, '--duration', '0.2', '--warmup', '0'], { limitMs: 30000 });
    assert.equal(r.code, 0, r.err);
    const line = JSON.parse(r.out);
    assert.ok(line.requests > 0 && line.errors === 0, r.out);
  }
});

test('--stream: several values on stdin; TCP has no client streams, so exit 2 with the reason', async () => {
  const r = await nestc(['send', url, 'echo', '--stream'], { input: '[1,2] 3\n"x"\n{"a":1}' });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--stream: NC_EUNSUPPORTED.*no client streams/);
  // one value is a plain request on every transport
  const one = await nestc(['send', url, 'sum', '--stream'], { input: ' [1,2]\n' });
  assert.equal(one.code, 0, one.err);
  assert.equal(one.out, '3\n');
  const bad = await nestc(['send', url, 'sum', '--stream'], { input: '1 [2,' });
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--stream value 2 \(byte 2\) is not valid JSON/);
});
