#!/usr/bin/env python3
"""chaos_load.py — the clients of tests/chaos/run (python3 standard library only).

Posters: --convs conversations are created, then --workers threads post user
messages to them (conversation i belongs to worker i % workers), each first
through gateway (worker % number of --urls), then through the next gateway
after each failure, as a client behind a load balancer would. Every message carries its
own Idempotency-Key; a 503/504/429 or a transport error is retried with the
same key and body (after min(Retry-After, 1 s), or 0.2 s) before the worker
goes on, so a message is acknowledged at most once. After a 202 the worker
waits --pace seconds. Every attempt is one line of OUT/attempts.jsonl:
    {"w": worker, "c": conv index, "k": key, "g": gateway index,
     "t0": start, "t1": end (wall seconds), "s": HTTP status
     (-1 transport error, -2 timeout, -3 a 202 without a message id),
     "m": message id of a 202}

Listeners: --listeners threads each follow the SSE stream of one conversation
(conversation j * convs // listeners), from ?after=0, and log every stored
event they receive to OUT/sse/J.jsonl as {"id", "seq", "n": connection
number, "t"}; every connection is one {"conn": n, "g", "t", "after",
"status", "end"} line. A stream that ends, fails, answers non-200 or is
silent for --read-timeout seconds (keep-alives count) is resumed with
Last-Event-ID (the last id received) through the other gateway.

End: once --stop-file exists the posters stop. The load then waits until the
database is quiet (--database-url, via psql: the newest event id unchanged for
2 s, at most 60 s), reads each listened conversation's last event id, and gives
the listeners --catchup seconds to receive it live; a listener still behind
is made to resume once (its connection is shut down) and gets --catchup
seconds more. OUT/listeners.json records each listener's target, whether it
caught up live, after the forced resume, or not at all. OUT/ready appears once
the load runs, OUT/done at the very end.
"""
import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from bicky_client import Client  # noqa: E402 (tests/tools)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--urls", required=True, help="comma list of gateway base URLs")
    p.add_argument("--token", default=os.environ.get("BICKY_TOKEN", ""))
    p.add_argument("--database-url", default=os.environ.get("BICKY_DATABASE_URL", ""))
    p.add_argument("--out", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--convs", type=int, default=60)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--listeners", type=int, default=16)
    p.add_argument("--pace", type=float, default=0.1)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--read-timeout", type=float, default=6.0)
    p.add_argument("--catchup", type=float, default=15.0)
    return p.parse_args()


def create_convs(args, urls):
    clients = [Client(u, args.token, args.timeout) for u in urls]
    ids, n = [], 0
    deadline = time.time() + 60
    while len(ids) < args.convs and time.time() < deadline:
        n += 1
        st, data, _ = clients[n % len(clients)].request(
            "POST", "/api/conversations", '{"title":"chaos"}')
        if st == 201:
            ids.append(json.loads(data)["id"])
        else:
            time.sleep(0.05)
    for c in clients:
        c.close()
    if len(ids) < args.convs:
        sys.exit("chaos_load: could only create %d conversations" % len(ids))
    return ids


class Poster(threading.Thread):
    RETRY = (503, 504, 429, -1, -2)

    def __init__(self, args, wid, urls, convs, log, lock, stop):
        super().__init__(daemon=True)
        self.args, self.wid, self.log, self.lock, self.stop = args, wid, log, lock, stop
        self.mine = [i for i in range(len(convs)) if i % args.workers == wid]
        self.convs, self.n = convs, 0
        self.clients = [Client(u, args.token, args.timeout) for u in urls]
        self.home = wid % len(urls)

    def post(self, i):
        """Posts one new message to conversation i until it is answered (202 or
        an error that is not retried) or the load stops."""
        self.n += 1
        key = uuid.uuid4().hex
        body = json.dumps({"content": "chaos w%d c%d n%d %s" % (self.wid, i, self.n, key)})
        path = "/api/conversations/%s/messages" % self.convs[i]
        gw = self.home
        while True:
            t0 = time.time()
            st, data, ra = self.clients[gw].request("POST", path, body, key)
            rec = {"w": self.wid, "c": i, "k": key, "g": gw, "t0": round(t0, 4),
                   "t1": round(time.time(), 4), "s": st}
            if st == 202:
                try:
                    rec["m"] = json.loads(data)["message"]["id"]
                except (ValueError, KeyError, TypeError):
                    rec["s"] = -3
            elif st not in self.RETRY:
                rec["b"] = data[:200].decode("utf-8", "replace")
            with self.lock:
                self.log.write(json.dumps(rec, separators=(",", ":")) + "\n")
            if st not in self.RETRY or self.stop.is_set():
                return
            gw = (gw + 1) % len(self.clients)
            wait = float(ra) if ra and ra.isdigit() else 0.2
            time.sleep(min(wait, 1.0))

    def run(self):
        k = 0
        while not self.stop.is_set():
            self.post(self.mine[k % len(self.mine)])
            k += 1
            if self.args.pace:
                time.sleep(self.args.pace)
        for c in self.clients:
            c.close()


class Listener(threading.Thread):
    def __init__(self, args, lid, urls, conv, out_dir, stop):
        super().__init__(daemon=True)
        self.args, self.lid, self.urls, self.conv, self.stop = args, lid, urls, conv, stop
        self.gw = lid % len(urls)
        self.last = None  # last stored event id received
        self.n = 0  # connections opened
        self.sock = None
        self.lock = threading.Lock()
        self.log = open(os.path.join(out_dir, "%d.jsonl" % lid), "w")

    def write(self, rec):
        self.log.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def kick(self):
        """Shuts the current connection down: the listener resumes (another thread)."""
        with self.lock:
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def connect(self):
        u = urlsplit(self.urls[self.gw])
        conn = http.client.HTTPConnection(u.hostname, u.port or 80,
                                          timeout=self.args.read_timeout)
        headers = {"Authorization": "Bearer " + self.args.token, "Accept": "text/event-stream"}
        path = "/api/conversations/%s/events" % self.conv
        if self.last is None:
            path += "?after=0"
        else:
            headers["Last-Event-ID"] = str(self.last)
        conn.request("GET", path, headers=headers)
        with self.lock:
            self.sock = conn.sock
        return conn, conn.getresponse()

    def read(self, resp):
        """Reads events until the stream ends; returns why it ended."""
        ev_id, data = None, None
        while not self.stop.is_set():
            line = resp.readline()
            if not line:
                return "eof"
            line = line.rstrip(b"\r\n")
            if not line:
                if ev_id is not None and data is not None:
                    self.event(ev_id, data)
                ev_id, data = None, None
            elif line.startswith(b"id:"):
                ev_id = int(line[3:].strip())
            elif line.startswith(b"data:"):
                data = line[5:].strip()
            elif line.startswith(b"event: error"):
                return "error event"
        return "stop"

    def event(self, ev_id, data):
        try:
            seq = json.loads(data).get("seq")
        except ValueError:
            seq = None
        self.write({"id": ev_id, "seq": seq, "n": self.n, "t": round(time.time(), 4)})
        self.last = ev_id

    def run(self):
        while not self.stop.is_set():
            self.n += 1
            rec = {"conn": self.n, "g": self.gw, "t": round(time.time(), 4), "after": self.last}
            conn = None
            try:
                conn, resp = self.connect()
                rec["status"] = resp.status
                rec["end"] = self.read(resp) if resp.status == 200 else "status"
            except TimeoutError:
                rec["end"] = "read timeout"
            except (OSError, http.client.HTTPException, ValueError) as e:
                rec["end"] = type(e).__name__
            finally:
                with self.lock:
                    self.sock = None
                if conn is not None:
                    conn.close()
            rec["t_end"] = round(time.time(), 4)
            self.write(rec)
            if self.stop.is_set():
                break
            self.gw = (self.gw + 1) % len(self.urls)
            time.sleep(random.uniform(0.05, 0.25))
        self.log.close()


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("psql: " + out.stderr.strip())
    return out.stdout


def wait_quiet(url):
    """Waits until the newest event id stays the same for 2 s (at most 60 s)."""
    last, since, deadline = None, time.time(), time.time() + 60
    while time.time() < deadline:
        cur = psql(url, "select coalesce(max(id), 0) from events").strip()
        if cur != last:
            last, since = cur, time.time()
        elif time.time() - since >= 2.0:
            return True
        time.sleep(0.2)
    return False


def wait_caught_up(listeners, targets, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if all((lst.last or 0) >= targets[lst.conv] for lst in listeners):
            return
        time.sleep(0.1)


def finish_listeners(args, listeners):
    """The end of the run for the listeners (see the module's docstring)."""
    quiet = wait_quiet(args.database_url)
    ids = ",".join("'%s'" % lst.conv for lst in listeners)
    targets = {c: 0 for c in (lst.conv for lst in listeners)}
    for line in psql(args.database_url, "select conversation_id, max(id) from events where "
                     "conversation_id in (%s) group by 1" % ids).split():
        c, m = line.split("|")
        targets[c] = int(m)
    wait_caught_up(listeners, targets, args.catchup)
    live = {lst.lid for lst in listeners if (lst.last or 0) >= targets[lst.conv]}
    for lst in listeners:
        if lst.lid not in live:
            lst.kick()
    wait_caught_up(listeners, targets, args.catchup)
    res = [{"listener": lst.lid, "conv": lst.conv, "target": targets[lst.conv], "last": lst.last,
            "live": lst.lid in live, "caught_up": (lst.last or 0) >= targets[lst.conv]}
           for lst in listeners]
    return {"quiet": quiet, "listeners": res}


def main():
    args = parse_args()
    urls = args.urls.split(",")
    os.makedirs(os.path.join(args.out, "sse"), exist_ok=True)
    convs = create_convs(args, urls)
    with open(os.path.join(args.out, "convs.txt"), "w") as f:
        f.write("\n".join(convs) + "\n")
    stop_posts, stop_listen = threading.Event(), threading.Event()
    lock = threading.Lock()
    listeners = [Listener(args, j, urls, convs[j * len(convs) // args.listeners],
                          os.path.join(args.out, "sse"), stop_listen)
                 for j in range(args.listeners)]
    for lst in listeners:
        lst.start()
    with open(os.path.join(args.out, "attempts.jsonl"), "w", buffering=1) as log:
        posters = [Poster(args, w, urls, convs, log, lock, stop_posts)
                   for w in range(args.workers)]
        for p in posters:
            p.start()
        open(os.path.join(args.out, "ready"), "w").close()
        while not os.path.exists(args.stop_file):
            time.sleep(0.1)
        stop_posts.set()
        for p in posters:
            p.join(args.timeout + 5)
    summary = finish_listeners(args, listeners)
    stop_listen.set()
    for lst in listeners:
        lst.kick()
        lst.join(args.read_timeout + 5)
    with open(os.path.join(args.out, "listeners.json"), "w") as f:
        json.dump(summary, f)
    open(os.path.join(args.out, "done"), "w").close()


if __name__ == "__main__":
    main()
