#!/usr/bin/env node
// A stand-in for `nestc send` / `nestc emit` (DESIGN.md §5) built on the NestJS client. Its only use is
// to check the CliDriver and the ctest wiring without the C CLI:
//
//   NESTC_BIN=$PWD/fake-nestc.mjs ./with-server.sh nest -- node run-suite.mjs --driver cli --url {URL}
//
// Slow (one Node process per request) and not part of the ctest suite.
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { TimeoutError, lastValueFrom, tap, timeout } from 'rxjs';

const usage = (msg) => {
  process.stderr.write(`nestc: ${msg}\nusage: nestc send|emit <url> <pattern> [data] [--timeout MS] [--ca F --cert F --key F]\n`);
  process.exit(2);
};

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { timeout: { type: 'string', default: '5000' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' } },
  });
} catch (e) {
  usage(e.message);
}
const { values: opt, positionals: pos } = parsed;
const [cmd, url, patternText, dataText = 'null'] = pos;
if (!['send', 'emit'].includes(cmd) || !url || patternText === undefined) usage('bad arguments');

const parseMaybe = (t) => {
  try {
    const v = JSON.parse(t);
    return typeof v === 'object' || typeof v === 'number' ? v : t;
  } catch {
    return t;
  }
};
const pattern = parseMaybe(patternText);
let data;
try {
  data = JSON.parse(dataText);
} catch (e) {
  usage(`data is not JSON: ${e.message}`);
}

const u = new URL(url);
const tls = u.protocol === 'tls:';
const tlsOptions = tls ? { servername: u.hostname } : undefined;
if (tls) for (const k of ['ca', 'cert', 'key']) if (opt[k]) tlsOptions[k] = readFileSync(opt[k]);
const client = ClientProxyFactory.create({
  transport: Transport.TCP,
  options: { host: u.hostname, port: Number(u.port), tlsOptions },
});
let socketError = null;
client.on('error', (e) => (socketError = e));
const fail = (e) => {
  const why = socketError ? `${socketError.code ?? ''} ${socketError.message}` : `${e.code ?? ''} ${e.message}`;
  process.stderr.write(`nestc: ${why.includes('certif') ? 'TLS certificate error: ' : ''}${why.trim()}\n`);
  process.exit(2);
};

if (cmd === 'emit') {
  try {
    await lastValueFrom(client.emit(pattern, data), { defaultValue: undefined });
  } catch (e) {
    fail(e);
  }
  // "Accepted" must mean the bytes left: end the socket and wait for it to close before exiting
  // (a TLS socket may still be handshaking when emit() completes).
  const sock = client.unwrap();
  const closed = new Promise((res) => sock.once('close', res));
  client.close();
  await closed;
  process.exit(0);
}

const ms = Number(opt.timeout);
try {
  await lastValueFrom(
    client.send(pattern, data).pipe(
      tap((v) => process.stdout.write(`${JSON.stringify(v)}\n`)),
      timeout({ first: ms }),
    ),
    { defaultValue: undefined },
  );
  process.exit(0);
} catch (e) {
  if (e instanceof TimeoutError) {
    process.stderr.write(`nestc: request timed out after ${ms} ms\n`);
    process.exit(2);
  }
  if (e instanceof Error) fail(e);
  process.stderr.write(`${JSON.stringify(e)}\n`);
  process.exit(1);
}
