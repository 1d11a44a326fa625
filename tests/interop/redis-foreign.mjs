// redis-foreign.mjs --url redis://H:P — run by with-server.sh (nest or nestc conformance server on that broker):
// what a server does with messages that no NestJS client would send. A plain ioredis client publishes bodies of
// its own to channels the server serves; NestJS's ServerRedis defines the outcome:
//   body = JSON.parse(message) — the bytes decoded as UTF-8, U+FFFD for ill-formed ones — else the decoded
//          string itself;
//   a body that is falsy, or has neither `pattern` nor `data`, is "external": the message is an event on the
//          channel with the whole body as its data (an `id` alone does not make it a request);
//   otherwise a body with an `id` is a request, answered on `<channel>.reply`.
// The event handler of `notification` records the data it gets; the `events` request reads them back, so
// the test sees what the handler saw. A body on a request channel that is not a request is an event nobody
// handles: the server logs it and goes on. Afterwards a normal request must still succeed, and a nestc
// server must exit cleanly (with-server.sh checks that).
import Redis from 'ioredis';
import { checkEvents, checkRequests, checkStillServing, checkUnhandled, echoRequests, fallbackEvents, finish, openHarness, replyLog, unhandledBodies } from './foreign-lib.mjs';

const { url: u, nest } = openHarness('node redis-foreign.mjs --url redis://H:P');
const opts = { host: u.hostname, port: Number(u.port), lazyConnect: true, maxRetriesPerRequest: 0 };
const raw = new Redis(opts); // publishes
const sub = new Redis(opts); // receives the replies
await raw.connect();
await sub.connect();
const replies = replyLog();
sub.on('messageBuffer', (channel, payload) => replies.add(String(channel), payload));
await sub.subscribe('echo.reply');
const publish = (channel, body) => raw.publish(channel, body);
const publishEcho = (body) => publish('echo', body);

// --- events: bodies published to `notification`, and the data its handler saw ----------------------------
await checkEvents(nest, fallbackEvents(), publish);
// --- requests from the plain client: an id and `pattern`/`data` make a request, answered on echo.reply ----
await checkRequests(echoRequests('channel'), replies, publishEcho, { replyOn: 'echo.reply' });
// --- bodies on a request channel that are not requests: events, not answered ----------------------------------
await checkUnhandled(unhandledBodies(), replies, publishEcho);
await checkStillServing(nest);

raw.disconnect();
sub.disconnect();
await finish(nest);
