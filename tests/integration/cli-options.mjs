// The CLI's option table (tools/nestc/table.c): each command accepts only its own options wherever they
// stand, an unknown last flag is "unknown option" (not "needs a value"), a known flag without its value
// "needs a value", numbers out of their range "out of range" (--workers at most 1024), every command's
// --help lists the schemes of the build, `bench` alone prints its usage. None of these connects: the
// URL's port is closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nestc } from './cli-lib.mjs';

const URL = 'tcp://127.0.0.1:1';

test('an option of another command is refused, wherever it stands', async () => {
  const cases = [
    ['send', URL, 'sum', '--data-file', 'x.json'],
    ['send', '--events', '5', URL, 'sum'],
    ['send', URL, '--connections', '7', 'sum'],
    ['emit', URL, 'x', '--workers', '3'],
    ['emit', URL, 'x', '--stream'],
    ['conformance', URL, '--timeout', '5'],
    ['conformance', '--header', 'a=b', URL],
    ['bench', URL, 'sum', '--workers', '2'],
    ['bench', URL, 'sum', '--stream'],
  ];
  for (const args of cases) {
    const bad = args.find((a) => a.startsWith('--'));
    const r = await nestc(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, new RegExp(`unknown option ${bad} for ${args[0]}`), args.join(' '));
    assert.equal(r.out, '', args.join(' '));
  }
});

test('an unknown flag in last position is unknown, a known one without value needs a value', async () => {
  let r = await nestc(['send', URL, 'sum', '--nope']);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown option --nope for send/);
  assert.doesNotMatch(r.err, /needs a value/);
  r = await nestc(['send', URL, 'sum', '-x']);
  assert.match(r.err, /unknown option -x for send/);
  r = await nestc(['send', URL, 'sum', '--timeout']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--timeout needs a value/);
  r = await nestc(['conformance', URL, '--workers']);
  assert.match(r.err, /--workers needs a value/);
  r = await nestc(['send', URL, 'sum', '--insecure=1']);
  assert.match(r.err, /--insecure takes no value/);
});

test('numbers out of range say so; --workers has an upper bound', async () => {
  for (const [args, what] of [
    [['send', URL, 'sum', '--timeout', '99999999999'], '--timeout 99999999999'],
    [['send', URL, 'sum', '--timeout=99999999999999999999999'], '--timeout 99999999999999999999999'],
    [['conformance', URL, '--workers', '1025'], '--workers 1025'],
    [['conformance', URL, '--workers', '100000'], '--workers 100000'],
    [['bench', URL, 'sum', '--connections', '0'], '--connections 0'],
    [['send', URL, 'sum', '--connect-timeout', '0'], '--connect-timeout 0'],
  ]) {
    const r = await nestc(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, new RegExp(`${what} is out of range`), `${args.join(' ')}: ${r.err}`);
  }
  const r = await nestc(['send', URL, 'sum', '--timeout', 'soon']);
  assert.match(r.err, /--timeout expects a non-negative integer/);
});

test('every command lists the schemes of the build in its help', async () => {
  const schemes = ['tcp', 'tls', 'redis', 'rediss', 'nats'];
  for (const cmd of ['send', 'emit', 'conformance', 'bench', 'options', 'help', 'completion']) {
    const r = await nestc([cmd, '--help']);
    assert.equal(r.code, 0, cmd);
    const line = r.out.split('\n').find((l) => l.startsWith('URL schemes'));
    assert.ok(line, `${cmd} --help has no scheme line:\n${r.out}`);
    for (const s of schemes) assert.match(line, new RegExp(`\\b${s}\\b`), `${cmd}: ${line}`);
    // only the options of the command
    if (cmd !== 'bench') assert.doesNotMatch(r.out, /--data-file|--connections/, cmd);
  }
  const r = await nestc(['--help']);
  for (const s of schemes) assert.match(r.out, new RegExp(`${s}://`));
  const o = await nestc(['options']);
  assert.equal(o.code, 2);
  for (const s of schemes) assert.match(o.err, new RegExp(`\\b${s}\\b`));
});

test('bench with no arguments prints its usage and exits 2', async () => {
  const r = await nestc(['bench']);
  assert.equal(r.code, 2);
  assert.match(r.err, /usage: nestc bench <url> <pattern>/);
  assert.match(r.err, /--connections/);
});

test('--insecure is refused where there is no TLS certificate to skip', async () => {
  const r = await nestc(['send', URL, 'sum', '--insecure']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--insecure needs TLS \(tls:\/\/, rediss:\/\/, mqtts:\/\/, amqps:\/\/, grpcs:\/\/, grpc:\/\/, nats:\/\/, kafka:\/\/\), not tcp:/);
  for (const plain of ['redis', 'mqtt', 'amqp']) {
    const p = await nestc(['send', `${plain}://127.0.0.1:1`, 'sum', '--insecure']);
    assert.equal(p.code, 2);
    assert.match(p.err, /--insecure needs TLS/);
  }
});

test('nestc help <command | scheme | --man>', async () => {
  let r = await nestc(['help', 'send']);
  assert.equal(r.code, 0);
  assert.match(r.out, /^usage: nestc send/);
  r = await nestc(['help', 'NATS']);
  assert.equal(r.code, 0);
  assert.match(r.out, /nats:\/\/ options/);
  r = await nestc(['help', 'nope']);
  assert.equal(r.code, 2);
  assert.match(r.err, /not a command or a URL scheme/);
  r = await nestc(['help', '--man']);
  assert.equal(r.code, 0);
  assert.match(r.out, /^\.TH NESTC 1/);
});
