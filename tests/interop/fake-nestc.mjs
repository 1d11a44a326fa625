#!/usr/bin/env node
// A stand-in for the nestc CLI (DESIGN.md §5) built on NestJS: `send` and `emit` use the Nest client,
// `conformance` runs nest-server.mjs. Its only use is to check the drivers, with-server.sh and the
// ctest wiring before the C CLI exists:
//
//   NESTC_BIN=$PWD/fake-nestc.mjs ./with-server.sh nest -- node run-suite.mjs --driver cli --url {URL}
//
// Slow (one Node process per request) and not part of the ctest suite.
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { TimeoutError, lastValueFrom, tap, timeout } from 'rxjs';

function usage(msg) {
  process.stderr.write(`nestc: ${msg}\nusage: nestc send|emit|conformance <url> [pattern] [data] [--timeout MS] [--ca F --cert F --key F]\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      timeout: { type: 'string', default: '5000' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
  });
} catch (e) {
  usage(e.message);
}
const { values: opt, positionals: pos } = parsed;
const [cmd, url, patternText, dataText = 'null'] = pos;
if (!url) usage('missing URL');
const u = new URL(url);

if (cmd === 'conformance') {
  const tlsArgs = ['cert', 'key', 'ca'].flatMap((k) => (opt[k] ? [`--${k}`, opt[k]] : []));
  process.argv = [process.argv[0], 'nest-server.mjs', '--host', u.hostname, '--port', u.port, ...tlsArgs];
  await import('./nest-server.mjs');
} else if (cmd === 'send' || cmd === 'emit') {
  if (patternText === undefined) usage('missing pattern');
  await runClient();
} else {
  usage(`unknown command ${cmd}`);
}

// <pattern>: a JSON object or number if it parses as one, otherwise the plain string.
function parsePattern(t) {
  try {
    const v = JSON.parse(t);
    return typeof v === 'object' || typeof v === 'number' ? v : t;
  } catch {
    return t;
  }
}

async function runClient() {
  const pattern = parsePattern(patternText);
  let data;
  try {
    data = JSON.parse(dataText);
  } catch (e) {
    usage(`data is not JSON: ${e.message}`);
  }

  const tlsOptions = u.protocol === 'tls:' ? { servername: u.hostname } : undefined;
  if (tlsOptions) for (const k of ['ca', 'cert', 'key']) if (opt[k]) tlsOptions[k] = readFileSync(opt[k]);
  const client = ClientProxyFactory.create({
    transport: Transport.TCP,
    options: { host: u.hostname, port: Number(u.port), tlsOptions },
  });
  let socketError = null;
  client.on('error', (e) => (socketError = e));
  const fail = (e) => {
    const src = socketError ?? e;
    const why = `${src.code ?? ''} ${src.message}`.trim();
    process.stderr.write(`nestc: ${/certif/i.test(why) ? 'TLS certificate error: ' : ''}${why}\n`);
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
}
