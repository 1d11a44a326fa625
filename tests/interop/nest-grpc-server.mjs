// The NestJS implementation of the gRPC conformance service (DESIGN.md §5a, conformance.proto): the reference
// the nestc gRPC transport will be tested against, checked by grpc-conformance.mjs.
//
//   node nest-grpc-server.mjs --port P [--proto FILE]
//
// Loaded as the reference is: package nestc.conformance, loader { keepCase: true } (proto-loader's other
// defaults: 64-bit integers as Long, bytes as Buffer, enums as numbers). Prints "READY <port>" once listening;
// exits 0 on SIGTERM/SIGINT after app.close().
//
// Plain ESM, no TypeScript: decorators are applied as functions. Nest 12 hands a handler only what its
// parameter decorators ask for, so each handler gets @Payload() and, where it needs them, @Ctx() (the call's
// Metadata) and a custom decorator for the grpc-js call object (argument 2 of Nest's gRPC handler call).
import 'reflect-metadata';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Controller, Module, createParamDecorator } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, GrpcMethod, GrpcStreamMethod, Payload, RpcException, Transport } from '@nestjs/microservices';
import { Observable, map, reduce } from 'rxjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    proto: { type: 'string', default: join(here, '..', 'vectors', 'grpc', 'conformance.proto') },
  },
});
if (!args.port) {
  console.error('usage: node nest-grpc-server.mjs --port P [--proto FILE]');
  process.exit(2);
}

const GrpcCall = createParamDecorator((_data, ctx) => ctx.getArgByIndex(2));

class ConformanceController {
  sum(req) {
    return { sum: (req.numbers || []).reduce((a, b) => a + b, 0) };
  }

  echo(req) {
    return req;
  }

  exception(req) {
    // code 0: RpcException(message) → status 2 UNKNOWN; 1..16: RpcException({ code, message }) → that status
    if (!req.code) throw new RpcException(req.message);
    throw new RpcException({ code: req.code, message: req.message });
  }

  sleep(req) {
    return new Promise((resolve) => setTimeout(() => resolve({ ms: req.ms }), req.ms));
  }

  context(_req, metadata, call) {
    const md = {};
    for (const [k, v] of Object.entries(metadata.getMap())) md[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
    return { metadata: md, method: call.getPath() };
  }

  streaming(req) {
    const items = req.items || [];
    const stop = req.fail_after > 0 ? Math.min(req.fail_after, items.length) : items.length;
    return new Observable((sub) => {
      let i = 0;
      let timer;
      const next = () => {
        if (i === stop) {
          if (req.fail_after > 0) {
            sub.error(new RpcException({ code: 9, message: `failed after ${stop} items` }));
          } else {
            sub.complete();
          }
          return;
        }
        sub.next({ index: i, value: items[i] });
        i++;
        timer = setTimeout(next, req.delay_ms || 0);
      };
      next();
      return () => clearTimeout(timer);
    });
  }

  clientSum(requests$) {
    return requests$.pipe(reduce((acc, r) => ({ sum: acc.sum + (r.numbers || []).reduce((a, b) => a + b, 0) }), { sum: 0 }));
  }

  bidiEcho(requests$) {
    return requests$.pipe(map((m) => m));
  }
}

const proto = ConformanceController.prototype;
// as TypeScript's __decorate does: the descriptor a decorator changed is defined back (GrpcStreamMethod
// replaces the method with one that releases the buffered request messages once the handler subscribed)
const decorate = (method, decorators) => {
  const d = Object.getOwnPropertyDescriptor(proto, method);
  for (const dec of decorators) dec(proto, method, d);
  Object.defineProperty(proto, method, d);
};
for (const [method, rpc] of [['sum', 'Sum'], ['echo', 'Echo'], ['exception', 'Exception'], ['sleep', 'Sleep'],
  ['context', 'Context'], ['streaming', 'Streaming']]) {
  decorate(method, [GrpcMethod('Conformance', rpc)]);
  Payload()(proto, method, 0);
}
Ctx()(proto, 'context', 1);
GrpcCall()(proto, 'context', 2);
for (const [method, rpc] of [['clientSum', 'ClientSum'], ['bidiEcho', 'BidiEcho']]) {
  decorate(method, [GrpcStreamMethod('Conformance', rpc)]);
  Payload()(proto, method, 0);
}
Controller()(ConformanceController);

class AppModule {}
Module({ controllers: [ConformanceController] })(AppModule);

const app = await NestFactory.createMicroservice(AppModule, {
  transport: Transport.GRPC,
  options: {
    url: `${args.host}:${args.port}`,
    package: 'nestc.conformance',
    protoPath: args.proto,
    loader: { keepCase: true },
  },
  logger: ['error'],
});
await app.listen();
console.log(`READY ${args.port}`);
const stop = async () => {
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
