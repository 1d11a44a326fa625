"""Writes bench/librabbitmq/RESULTS.md from the JSON lines of compare.sh (environment: OUT and the facts)."""
import datetime
import json
import os
import statistics

env = os.environ
rows = [json.loads(line) for line in open(env["OUT"]) if line.strip()]
runs = [r for r in rows if "pub_cpu_us" in r]
cg = [r for r in rows if "instructions" in r]


def med(lib, key, mode=None):
    v = [r[key] for r in runs if r["lib"] == lib and (mode is None or r["mode"] == mode)]
    return statistics.median(v) if v else float("nan")


def rng(lib, key, mode=None):
    v = [r[key] for r in runs if r["lib"] == lib and (mode is None or r["mode"] == mode)]
    return f"{min(v):.2f}–{max(v):.2f}" if v else "?"


def instr(lib, phase, mode):
    for r in cg:
        if r["lib"] == lib and r["phase"] == phase and r["mode"] == mode:
            return r["instructions"] / r["n"]
    return float("nan")


def fmt(x, d=2):
    if x != x:
        return "—"
    return f"{x:,.{d}f}"


def ratio(a, b):
    if a != a or b != b or b == 0:
        return "—"
    return f"{a / b:.1f}×"


now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
p = print
p("# rabbitmq-c vs nestc's AMQP 0-9-1 codec")
p()
p(f"Written by `bench/librabbitmq/compare.sh` (the reading: docs/amqp.md, \"Why our own codec, not rabbitmq-c\").")
p(f"Recorded {now}; nestc {env['COMMIT']}, rabbitmq-c {env['RMQ_VER']} (Debian librabbitmq4 {env['RMQ_DEB']}),")
p(f"rabbitmq-server {env['BROKER_VER']} on loopback; {env['CPU']}; load average {env['LOAD0']} before the runs,")
p(f"{env['LOAD1']} after. {env['N']} messages per run, {env['REPS']} runs per point (median shown, range after it);")
p(f"instructions from callgrind runs of {env['CGN']} messages, counting only the phase named.")
p()
p("Workload, the same for both: one connection, one channel; publish N messages to a fresh exclusive queue through")
p("the default exchange (basic.publish + content header + body: the 84-byte NestJS request")
p("`{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"<uuid>\"}`, correlation-id (the uuid), reply-to")
p("the name of a server-named reply queue `amq.gen-…` (NestJS's `replyQueue`; direct reply-to needs a consumer on the publishing channel), delivery-mode 2, a headers table of two strings), until a passive queue.declare counts")
p("them all; then basic.consume and receive the N deliveries (basic.deliver + header + body), with no-ack, or")
p("acknowledging each (basic.ack). **own**: the codec with a minimal blocking socket driver (frames of many messages")
p("batched into one write of up to 64 KiB, each read fed whole, the acks of one read written together — what nestc's")
p("streams do per loop iteration). **rabbitmq-c**: its API as documented (`amqp_basic_publish`,")
p("`amqp_consume_message` + `amqp_destroy_envelope`, `amqp_basic_ack`, `amqp_maybe_release_buffers`).")
p("CPU is the process's user + system time (`getrusage`) over the phase; wall is the phase's duration; both per")
p("message. Allocations: `malloc`/`calloc`/`realloc` interposed (library calls included), per message.")
p()
LIBS = ("own", "rmq", "rmqin", "rmqinj")
p("| per message | own codec | rabbitmq-c API | ratio | rabbitmq-c codec functions | ratio | + headers as JSON | ratio |")
p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
PH = (("publish", "pub", "noack", None), ("receive, no-ack", "recv", "noack", "noack"),
      ("receive + basic.ack", "recv", "ack", "ack"))


def line(label, vals, d, own_bold=True, ranges=None, ratios=True):
    cells = []
    for i, v in enumerate(vals):
        c = fmt(v, d)
        if i == 0 and own_bold:
            c = f"**{c}**"
        if ranges:
            c += f" ({ranges[i]})"
        cells.append(c)
        if i > 0:
            cells.append(ratio(v, vals[0]) if ratios else "")
    p(f"| {label} | " + " | ".join(cells) + " |")


for label, phase, cmode, mode in PH:
    line(f"instructions, {label} (callgrind)", [instr(l, phase, cmode) for l in LIBS], 0)
for what, key in (("CPU µs", "cpu_us"), ("wall µs", "wall_us")):
    for label, phase, cmode, mode in PH:
        k = phase + "_" + key
        line(f"{what}, {label}", [med(l, k, mode) for l in LIBS], 2, ranges=[rng(l, k, mode) for l in LIBS])
for label, phase, cmode, mode in PH:
    line(f"allocations, {label}", [med(l, phase + "_allocs", mode) for l in LIBS], 2, ratios=False)
line("heap in use after receiving N (`mallinfo2`), bytes", [med(l, "heap_after_recv") for l in LIBS], 0,
     own_bold=False, ratios=False)
line("peak RSS of the process, kB", [med(l, "maxrss_kb") for l in LIBS], 0, own_bold=False, ratios=False)
p()
p("Ratios: the column's figure / the own codec's (above 1×: the own codec is cheaper).")
p()
p(f"Code linked (text + data + bss): own codec {int(env['OWN_TEXT']):,} B (`amqp_proto.o` + `amqp_table.o` at -O2;")
p(f"it uses jansson, which nestc links anyway); rabbitmq-c {int(env['RMQ_TEXT']):,} B (`librabbitmq.so`, which")
p(f"needs {env['RMQ_NEEDED']}).")
p()
p("The \"rabbitmq-c's codec functions\" column is the only way rabbitmq-c could run on nestc's streams and TLS:")
p("the own side's socket driver, publishes encoded with `amqp_encode_method` + `amqp_encode_properties` (the")
p("frames around them built as `amqp_basic_publish` builds them), deliveries framed and decoded by")
p("`amqp_handle_input` (its public byte-fed decoder) and assembled as `amqp_read_message` does. Handshake and")
p("queue setup, not measured, use the own codec there. \"+ headers as JSON\" adds what nestc would do on top of")
p("rabbitmq-c's functions and the own codec does itself: the headers table built from the caller's JSON headers")
p("for each publish, each delivery's headers table turned into the JSON object a handler is given.")
probes = [r for r in rows if r.get("probe") == "nested-tables"]
if probes:
    p()
    p("A hostile broker (`rmq-vs-codec nest LIB 4000`): a connection.start whose server-properties nest 4,000")
    p("tables (24 kB, under the 64 KiB rabbitmq-c accepts before Tune), decoded on a thread with a 256 KiB stack:")
    p()
    for r in probes:
        p(f"- {'own codec' if r['lib'] == 'own' else 'rabbitmq-c `amqp_handle_input`'}: {r['result']}")
p()
p("## Raw")
p()
p("```")
for r in rows:
    p(json.dumps(r, separators=(",", ":")))
p("```")
