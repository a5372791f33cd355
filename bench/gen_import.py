#!/usr/bin/env python3
"""gen_import.py — writes an import file for `bickyctl import` benchmarks and
tests: CONVS conversations of MSGS messages each, in Bicky's export format
(--format bicky: JSON Lines of conversation, message and event records) or
the TypeScript server's (--format legacy: one {"interaction", "messages"}
record per line, or --array: one JSON array). Ids are derived from --seed, so
two runs with the same arguments write the same file.

    bench/gen_import.py --convs 1000 --msgs 1000 --format bicky > /tmp/1m.jsonl
"""
import argparse
import json
import sys
import uuid


def uid(seed, *parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join([seed] + [str(p) for p in parts])))


def ts(i):
    # one second per message from 2025-01-01, with milliseconds
    s = i // 1000
    return "2025-01-%02dT%02d:%02d:%02d.%03dZ" % (1 + s // 86400 % 28, s // 3600 % 24,
                                                 s // 60 % 60, s % 60, i % 1000)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--convs", type=int, default=10)
    p.add_argument("--msgs", type=int, default=10)
    p.add_argument("--format", choices=["bicky", "legacy"], default="bicky")
    p.add_argument("--array", action="store_true", help="legacy: one JSON array")
    p.add_argument("--seed", default="bicky-import")
    p.add_argument("--content", type=int, default=80, help="characters per message")
    a = p.parse_args()
    out = sys.stdout
    body = ("lorem ipsum dolor sit amet " * (a.content // 27 + 1))[: a.content]
    dump = lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False)
    if a.array:
        out.write("[\n")
    n = 0
    for c in range(a.convs):
        cid = uid(a.seed, "c", c)
        t0 = c * a.msgs
        msgs = []
        for m in range(a.msgs):
            role = "user" if m % 2 == 0 else "assistant"
            msgs.append((uid(a.seed, "m", c, m), role, "%s %d" % (body, m), ts(t0 + m)))
        if a.format == "bicky":
            out.write(dump({"kind": "conversation", "id": cid, "source": "api", "type": "chat",
                            "title": "conversation %d" % c, "strategy": "echo", "status": "idle",
                            "on_busy": "enqueue", "metadata": {"n": c},
                            "message_count": a.msgs, "last_msg_seq": a.msgs,
                            "last_event_seq": a.msgs, "created_at": ts(t0),
                            "updated_at": ts(t0 + a.msgs)}) + "\n")
            for s, (mid, role, text, t) in enumerate(msgs, 1):
                out.write(dump({"kind": "message", "id": mid, "conversation_id": cid, "seq": s,
                                "role": role, "content": text, "status": "completed",
                                "metadata": {}, "created_at": t, "updated_at": t}) + "\n")
            for s, (mid, role, text, t) in enumerate(msgs, 1):
                out.write(dump({"kind": "event", "conversation_id": cid, "seq": s,
                                "type": "message.created" if role == "user" else
                                "message.completed",
                                "source": {"kind": "system", "id": "gen"},
                                "action": {"message_id": mid}, "reversible": False,
                                "created_at": t}) + "\n")
        else:
            rec = {"interaction": {"id": cid, "source": "desktop", "type": "query",
                                   "createdAt": ts(t0), "metadata": {"n": c}},
                   "messages": [{"id": mid, "interactionId": cid, "role": role, "content": text,
                                 "timestamp": t, "status": "completed"}
                                for mid, role, text, t in msgs]}
            sep = ",\n" if a.array and c + 1 < a.convs else "\n"
            out.write(dump(rec) + sep)
        n += a.msgs
    if a.array:
        out.write("]\n")


if __name__ == "__main__":
    main()
