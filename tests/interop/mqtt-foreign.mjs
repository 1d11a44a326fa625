// mqtt-foreign.mjs --url mqtt://H:P[?protocolVersion=5] — run by with-server.sh (nest or nestc conformance
// server on that broker): what a server does with messages that no NestJS client would send. A plain mqtt.js
// client publishes bodies of its own to topics the server serves; NestJS's ServerMqtt defines the outcome:
//   body = JSON.parse(payload.toString()) — bytes decoded as UTF-8, U+FFFD for ill-formed ones — else the
//          decoded string itself;
//   a body that is falsy, or has neither `pattern` nor `data`, is "external": the message is an event on the
//          topic with the whole body as its data (an `id` alone does not make it a request);
//   otherwise a body with an `id` is a request, answered on `<topic>/reply`.
// The event handler of `notification` records the data it gets; the `events` request reads them back, so
// the test sees what the handler saw. A body on a request topic that is not a request is an event nobody
// handles: the server logs it and goes on. Afterwards a normal request must still succeed, and a nestc
// server must exit cleanly (with-server.sh checks that).
import mqtt from 'mqtt';
import { checkEvents, checkRequests, checkStillServing, checkUnhandled, echoRequests, fallbackEvents, finish, openHarness, replyLog, unhandledBodies } from './foreign-lib.mjs';

const { url: u, nest } = openHarness('node mqtt-foreign.mjs --url mqtt://H:P[?protocolVersion=5]');
const protocolVersion = Number(u.searchParams.get('protocolVersion') ?? 4);
const raw = await mqtt.connectAsync(`${u.protocol}//${u.host}`, { protocolVersion, reconnectPeriod: 0 });
const replies = replyLog();
raw.on('message', (topic, payload) => replies.add(topic, payload));
await raw.subscribeAsync('echo/reply', { qos: 1 });
const publish = (topic, body) => raw.publishAsync(topic, body, { qos: 1 });
const publishEcho = (body) => publish('echo', body);

// --- events: bodies published to `notification`, and the data its handler saw ----------------------------
await checkEvents(nest, fallbackEvents(), publish);
// --- requests from the plain client: an id and `pattern`/`data` make a request, answered on echo/reply ----
await checkRequests(echoRequests('topic'), replies, publishEcho, { replyOn: 'echo/reply' });
// --- bodies on a request topic that are not requests: events, not answered ----------------------------------
await checkUnhandled(unhandledBodies(), replies, publishEcho);
await checkStillServing(nest);

await raw.endAsync();
await finish(nest);
