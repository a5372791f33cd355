#!/usr/bin/env python3
"""loadgen.py — steady HTTP load for the failover tests (python3 standard library).

run: creates --convs conversations, then --workers threads post user messages to
them round robin (conversation i belongs to worker i % workers) until --stop-file
exists or --duration seconds passed. Every message carries its own
Idempotency-Key; a 503/429 (or a transport error) is retried with the same key
and body after min(Retry-After, --max-retry-wait) seconds (before anything
else of that worker) while the worker goes on with its other conversations,
so an acknowledged message is never posted twice. Every attempt is one line of OUT/attempts.jsonl:
    {"c": conv index, "k": key, "t0": start, "t1": end (wall seconds),
     "s": HTTP status (-1 transport error, -2 timeout), "ra": Retry-After or null,
     "m": message id of a 202}
OUT/convs.txt lists the conversation ids (line i = index i), OUT/ready appears
once the load runs, OUT/summary.json at the end.

analyze: reads OUT and prints one JSON object: attempts, acknowledged messages,
statuses, "bad" attempts (anything but 202, or a 503/429 without Retry-After),
and with --event T (wall seconds, e.g. the kill time; --until bounds the window)
the conversations that failed after T and recovery_ms = the longest time from T
until such a conversation got its first 202 after its last failure. Writes OUT/acked.txt (message ids, one a line,
for the database check).
"""
import argparse
import json
import os
import sys
import threading
import time
import uuid

from bicky_client import Client  # beside this file


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--url", required=True)
    r.add_argument("--token", default=os.environ.get("BICKY_TOKEN", ""))
    r.add_argument("--out", required=True)
    r.add_argument("--convs", type=int, default=100)
    r.add_argument("--workers", type=int, default=8)
    r.add_argument("--duration", type=float, default=0.0)
    r.add_argument("--stop-file")
    r.add_argument("--max-retry-wait", type=float, default=1.0)
    r.add_argument("--timeout", type=float, default=15.0)
    r.add_argument("--pace", type=float, default=0.0,
                   help="seconds a worker waits between two posts (0: as fast as it can)")
    r.add_argument("--conv-body", default='{"title":"loadgen"}')
    a = sub.add_parser("analyze")
    a.add_argument("--out", required=True)
    a.add_argument("--event", type=float, default=0.0)
    a.add_argument("--since", type=float, default=0.0)
    a.add_argument("--until", type=float, default=0.0)
    return p.parse_args()


def create_convs(args, client):
    ids = []
    deadline = time.time() + 60
    while len(ids) < args.convs and time.time() < deadline:
        st, data, _ = client.request("POST", "/api/conversations", args.conv_body)
        if st == 201:
            ids.append(json.loads(data)["id"])
        else:
            time.sleep(0.05)
    if len(ids) < args.convs:
        sys.exit("loadgen: could only create %d conversations" % len(ids))
    return ids


class Worker(threading.Thread):
    def __init__(self, args, wid, convs, log, lock, stop):
        super().__init__(daemon=True)
        self.args, self.wid, self.log, self.lock, self.stop = args, wid, log, lock, stop
        self.mine = [i for i in range(len(convs)) if i % args.workers == wid]
        self.convs = convs
        self.pending = {}  # conv index -> (key, body)
        self.next_ok = {i: 0.0 for i in self.mine}
        self.seq = 0
        self.client = Client(args.url, args.token, args.timeout)

    def attempt(self, i):
        if i not in self.pending:
            self.seq += 1
            key = uuid.uuid4().hex
            body = json.dumps({"content": "loadgen w%d c%d n%d %s" % (self.wid, i, self.seq, key)})
            self.pending[i] = (key, body)
        key, body = self.pending[i]
        t0 = time.time()
        st, data, ra = self.client.request(
            "POST", "/api/conversations/%s/messages" % self.convs[i], body, key)
        t1 = time.time()
        rec = {"c": i, "k": key, "t0": round(t0, 4), "t1": round(t1, 4), "s": st, "ra": ra}
        if st == 202:
            try:
                rec["m"] = json.loads(data)["message"]["id"]
            except (ValueError, KeyError, TypeError):
                rec["s"] = -3  # a 202 without a message: reported as bad
            del self.pending[i]
        else:
            if st not in (503, 429):
                rec["b"] = data[:200].decode("utf-8", "replace")
            wait = float(ra) if ra and ra.isdigit() else 0.2
            self.next_ok[i] = t1 + min(wait, self.args.max_retry_wait)
        with self.lock:
            self.log.write(json.dumps(rec, separators=(",", ":")) + "\n")
        return st == 202

    def run(self):
        k = 0
        while not self.stop.is_set():
            now = time.time()
            ready = [i for i in self.mine if self.next_ok[i] <= now]
            if not ready:
                time.sleep(max(0.0, min(self.next_ok.values()) - now))
                continue
            # A failed message is retried first, as soon as its wait is over.
            retry = [i for i in ready if i in self.pending]
            i = retry[0] if retry else ready[k % len(ready)]
            k += 0 if retry else 1
            if self.attempt(i) and self.args.pace:
                time.sleep(self.args.pace)
        self.client.close()


def run(args):
    os.makedirs(args.out, exist_ok=True)
    client = Client(args.url, args.token, args.timeout)
    convs = create_convs(args, client)
    client.close()
    with open(os.path.join(args.out, "convs.txt"), "w") as f:
        f.write("\n".join(convs) + "\n")
    stop = threading.Event()
    lock = threading.Lock()
    start = time.time()
    with open(os.path.join(args.out, "attempts.jsonl"), "w", buffering=1) as log:
        workers = [Worker(args, w, convs, log, lock, stop) for w in range(args.workers)]
        for w in workers:
            w.start()
        open(os.path.join(args.out, "ready"), "w").close()
        while True:
            time.sleep(0.05)
            if args.stop_file and os.path.exists(args.stop_file):
                break
            if args.duration and time.time() - start >= args.duration:
                break
        stop.set()
        for w in workers:
            w.join(args.timeout + 5)
    summary = analyze_dir(args.out, 0.0, 0.0, 0.0)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f)


def analyze_dir(out, event, since, until):
    recs = []
    with open(os.path.join(out, "attempts.jsonl")) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass  # a line cut by the end of the run
    statuses, bad, acked = {}, [], []
    for r in recs:
        if r["t0"] < since:
            continue
        statuses[str(r["s"])] = statuses.get(str(r["s"]), 0) + 1
        if r["s"] == 202:
            acked.append(r["m"])
        elif not (r["s"] in (503, 429) and r.get("ra")):
            bad.append(r)
    with open(os.path.join(out, "acked.txt"), "w") as f:
        f.write("".join(m + "\n" for m in acked))
    res = {"attempts": len(recs), "acked": len(acked), "statuses": statuses,
           "bad": len(bad), "bad_sample": bad[:5]}
    if event:
        end = until or float("inf")
        errors = [r for r in recs if r["s"] != 202 and event <= r["t1"] < end]
        failed = {r["c"] for r in errors}
        worst = 0.0
        for c in failed:
            ok = [r["t1"] for r in recs if r["c"] == c and r["s"] == 202 and r["t0"] >= event]
            last_fail = max(r["t1"] for r in errors if r["c"] == c)
            after = [t for t in ok if t >= last_fail]
            worst = max(worst, (min(after) if after else float("inf")) - event)
        res.update({"affected": len(failed), "recovery_ms": None if worst == float("inf")
                    else round(worst * 1000), "errors_after_event": len(errors),
                    "first_error_ms": round((min(r["t1"] for r in errors) - event) * 1000)
                    if errors else None,
                    "last_error_ms": round((max(r["t1"] for r in errors) - event) * 1000)
                    if errors else None})
    return res


def main():
    args = parse_args()
    if args.cmd == "run":
        run(args)
    else:
        print(json.dumps(analyze_dir(args.out, args.event, args.since, args.until)))


if __name__ == "__main__":
    main()
