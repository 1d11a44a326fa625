// nats-foreign.mjs --url nats://H:P — run by with-server.sh (nest or nestc conformance server on that broker):
// what a server does with messages that no NestJS client would send. A plain nats.js client publishes bodies of
// its own to subjects the server serves; NestJS's ServerNats defines the outcome:
//   body = msg.json() = JSON.parse(TextDecoder().decode(data)) — bytes decoded as UTF-8, U+FFFD for ill-formed
//          ones; a body that is not JSON then (text, an empty body) makes json() throw: the server logs the
//          error and drops the message (no reply, no event) — no string fallback, unlike MQTT and Redis;
//   a body that is falsy (null, false, 0, ""), or has neither `pattern` nor `data`, is "external": an event on
//          the subject with the whole body as its data (an `id` alone does not make it a request);
//   otherwise a body with an `id` is a request, answered on the message's reply subject.
// The event handler of `notification` records the data it gets; the `events` request reads them back, so the
// test sees what the handler saw. Afterwards normal requests must still succeed, and a nestc server must exit
// cleanly (with-server.sh checks that).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { REFUSED, b, checkEvents, checkRequests, checkStillServing, checkUnhandled, echoRequests, finish, openHarness, replyLog, tag, u8, unhandledBodies } from './foreign-lib.mjs';

const { url: u, nest } = openHarness('node nats-foreign.mjs --url nats://H:P');
const raw = await connect({ servers: u.host });
// Replies to the plain client's own requests, by id, on one inbox.
const inbox = `_INBOX.foreign.${randomUUID()}`;
const replies = replyLog();
raw.subscribe(inbox, { callback: (err, msg) => err || replies.add(msg.subject, msg.data) });
await raw.flush();
const publish = async (subject, body, reply) => {
  raw.publish(subject, body, reply ? { reply } : undefined);
  await raw.flush();
};
const publishEcho = (body) => publish('echo', body, inbox);

// --- events: bodies published to `notification`, and the data its handler saw ----------------------------
// [what, body, data the handler sees | REFUSED]
const events = [
  ['non-JSON text', b(`not json { ${tag}`), REFUSED],
  ['not UTF-8 (ff fe)', u8([0xff, 0xfe], tag), REFUSED],
  ['empty body', Buffer.alloc(0), REFUSED],
  ['lone surrogate in WTF-8 (ed a0 80)', u8('x', [0xed, 0xa0, 0x80], tag), REFUSED],
  ['JSON object without id/pattern/data', b(JSON.stringify({ tag, a: [1, true, null] })), { tag, a: [1, true, null] }],
  ['JSON with an id but no pattern/data (still an event)', b(JSON.stringify({ id: tag, x: 1 })), { id: tag, x: 1 }],
  ['JSON string', b(JSON.stringify(`s ${tag}`)), `s ${tag}`],
  ['JSON empty string', b('""'), ''],
  ['JSON number', b('42'), 42],
  ['JSON zero', b('0'), 0],
  ['JSON null', b('null'), null],
  ['JSON false', b('false'), false],
  // ill-formed UTF-8 inside a JSON string: decoded first (U+FFFD), then parsed as JSON
  ['JSON object with raw ff bytes in a string', u8(`{"tag":"${tag}","t":"a`, [0xff], 'b', [0xc3], '"}'), { tag, t: 'a\ufffdb\ufffd' }],
  ['JSON event envelope with raw ff in data', u8(`{"pattern":"notification","data":"${tag}`, [0xff], '"}'), `${tag}\ufffd`],
  ['JSON string with a lone surrogate (ed a0 80)', u8('"x', [0xed, 0xa0, 0x80], '"'), 'x\ufffd\ufffd\ufffd'],
];
await checkEvents(nest, events, publish, { fence: `fence ${tag}` });
// --- requests from the plain client: an id and `pattern`/`data` make a request, answered on the reply subject -
const requests = echoRequests('subject');
await checkRequests(requests, replies, publishEcho, { replyOn: inbox });
// --- bodies on a request subject, with a reply subject, that are not requests: not answered -----------------
const unhandled = unhandledBodies();
unhandled.splice(3, 0, ['JSON null', b('null')]);
await checkUnhandled(unhandled, replies, publishEcho, (fenceId) =>
  assert.deepStrictEqual([...replies.keys()].sort(), [...requests.map(([, , id]) => id), fenceId].sort(), 'only the requests were answered'),
);
await checkStillServing(nest);

await raw.drain();
await finish(nest);
