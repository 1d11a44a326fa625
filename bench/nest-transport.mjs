// The transport choice of nest-server.mjs and nest-client.mjs, in one place: which NestJS transport a URL
// names and the options NestJS is given for it, on the server side and on the client side.
//
//   parseTarget({url, host, port}) → {kind, host, port, brokers, queue, qos, rmqAck, url}
//   serverTransport(target) → {transport, options}   (for NestFactory.createMicroservice)
//   clientTransport(target) → {transport, options}   (for ClientProxyFactory.create)
//
// kind: 'tcp' (no URL, or tcp://), 'redis', 'nats', 'mqtt' (?qos=N: the subscription QoS of the server's
// handlers and the QoS of the client's requests), 'rmq' (amqp://H:P?queue=Q[&noAck=false]) or 'kafka'
// (kafka://H:P[,H:P…]: several bootstrap brokers, which is no WHATWG URL, so it is split here). Options are
// those the NestJS documentation gives for each transport, nothing tuned — except Kafka on the mock cluster,
// see KAFKA_CONSUMER.
import { Transport } from '@nestjs/microservices';

// KafkaJS 2 warns on every producer that its default partitioner changed in 2.0 (nothing here depends on it).
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

const DEFAULT_PORT = { tcp: 0, redis: 6379, nats: 4222, mqtt: 1883, rmq: 5672, kafka: 9092 };
const KIND = { 'tcp:': 'tcp', 'redis:': 'redis', 'nats:': 'nats', 'mqtt:': 'mqtt', 'amqp:': 'rmq', 'kafka:': 'kafka' };
export const SCHEMES = 'tcp://, redis://, nats://, mqtt://, amqp:// or kafka://';

// null when the URL's scheme is none of SCHEMES.
export function parseTarget({ url: text, host, port }) {
  if (!text) return { kind: 'tcp', host, port: Number(port), url: null };
  let brokers = null;
  let url;
  if (text.startsWith('kafka://')) {
    const [list, query = ''] = text.slice(8).split('?');
    brokers = list.split('/')[0].split(',');
    url = new URL(`kafka://${brokers[0]}?${query}`);
  } else {
    url = new URL(text);
  }
  const kind = KIND[url.protocol];
  if (!kind) return null;
  return {
    kind,
    host: url.hostname,
    port: Number(url.port || DEFAULT_PORT[kind]),
    brokers,
    // RabbitMQ: the queue (?queue=Q) and the consume mode (?noAck=false: NestJS's noAck option; default true).
    queue: url.searchParams.get('queue') ?? '',
    rmqAck: kind === 'rmq' && url.searchParams.get('noAck') === 'false',
    // MQTT: the QoS (0 unless ?qos=N), as a NestJS user sets it.
    qos: kind === 'mqtt' ? Number(url.searchParams.get('qos') ?? 0) : 0,
    // Kafka: the fetch wait, given in the URL as librdkafka names it (kafka.fetch.wait.max.ms, which the nestc
    // processes take from the same URL), is KafkaJS's maxWaitTimeInMs.
    fetchWait: Number(url.searchParams.get('kafka.fetch.wait.max.ms') ?? 100),
    url: text,
  };
}

// Kafka on librdkafka's mock cluster (docs/kafka.md, "Settings that make it fast"): KafkaJS's defaults wait up to
// 5 s for an empty fetch and 30 s for a dead group member; these are the settings the interop tests give NestJS.
// maxWaitTimeInMs (100 unless the URL says otherwise) bounds how long an empty fetch waits: the mock answers an
// empty fetch only when that wait is over, even if records arrive meanwhile, so it sets the pace of every hop. A
// group of its own per process: a member left by an earlier process would hold the join for its session timeout.
const KAFKA_CONSUMER = { sessionTimeout: 6000, rebalanceTimeout: 6000, heartbeatInterval: 1000 };
const kafkaClient = (t, clientId) => ({
  brokers: t.brokers,
  clientId,
  retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 },
});
const groupId = (who) => `nestc-bench-${who}-${process.pid}-${Date.now()}`;

export function serverTransport(t) {
  switch (t.kind) {
    case 'redis':
      return { transport: Transport.REDIS, options: { host: t.host, port: t.port } };
    case 'nats':
      return { transport: Transport.NATS, options: { servers: [`nats://${t.host}:${t.port}`] } };
    case 'mqtt':
      // subscribeOptions only for QoS 1/2
      return {
        transport: Transport.MQTT,
        options: { url: `mqtt://${t.host}:${t.port}`, ...(t.qos ? { subscribeOptions: { qos: t.qos } } : {}) },
      };
    case 'rmq':
      // urls and queue, noAck only when false; queueOptions left to NestJS's defaults (amqplib's: durable).
      return {
        transport: Transport.RMQ,
        options: { urls: [`amqp://${t.host}:${t.port}`], queue: t.queue, ...(t.rmqAck ? { noAck: false } : {}) },
      };
    case 'kafka':
      // fromBeginning: the group is new and KafkaJS resolves "latest" at its first fetch, after the join, so a
      // request produced in between would be skipped; the bench gives each server topics of its own, which hold
      // only its own requests. partitionsConsumedConcurrently 4 (the mock's partitions per topic): Nest awaits a
      // request's reply inside eachMessage, so with the default of 1 one partition at a time is served.
      return {
        transport: Transport.KAFKA,
        options: {
          client: kafkaClient(t, 'nestc-bench-server'),
          consumer: { ...KAFKA_CONSUMER, maxWaitTimeInMs: t.fetchWait, groupId: groupId('server') },
          subscribe: { fromBeginning: true },
          run: { partitionsConsumedConcurrently: 4 },
        },
      };
    default:
      return { transport: Transport.TCP, options: { host: t.host, port: t.port } };
  }
}

export function clientTransport(t) {
  switch (t.kind) {
    case 'kafka':
      // The reply topics are read from "latest" (not fromBeginning: they hold the replies of every earlier run);
      // nest-client.mjs probes until a reply comes back before it starts the load.
      return {
        transport: Transport.KAFKA,
        options: {
          client: kafkaClient(t, 'nestc-bench-client'),
          consumer: { ...KAFKA_CONSUMER, maxWaitTimeInMs: t.fetchWait, groupId: groupId('client') },
        },
      };
    case 'mqtt':
      return { transport: Transport.MQTT, options: { url: `mqtt://${t.host}:${t.port}` } };
    case 'rmq':
      return { transport: Transport.RMQ, options: { urls: [`amqp://${t.host}:${t.port}`], queue: t.queue } };
    default:
      return serverTransport(t); // TCP, Redis, NATS: the same options on both sides
  }
}
