#!/usr/bin/env python3
"""fake_legacy_server.py — a small fake of the old TypeScript server for the
`bickyctl import --follow` test (python3 standard library only).

Serves, from an in-memory store, the old server's read routes as
/work/shared/LEGACY.md describes them:
    GET /interactions       [interaction + messageCount, lastMessage?, hasUnprocessedMessages],
                            oldest first
    GET /interactions/:id   {"interaction": {...}, "messages": [...]}, or 404
    GET /stream             SSE: ": connected", keep-alive comments, one
                            "id: N" + "data: {type, timestamp, data}" per event
                            (lines end with LF, those of even events with CRLF)
                            (interaction:created|updated, message:added|updated)
With --token T, each of them wants "Authorization: Bearer T" (else 401).

Control routes for the test (POST with a JSON body, answer {"ok": true, ...}):
    /_ctl/interaction         {id, source?, type?, createdAt, metadata?}: a new interaction
    /_ctl/interaction_update  {id, metadata}: changes an interaction's metadata
    /_ctl/message             {id, interactionId, role, content, timestamp, status, metadata?}
    /_ctl/message_update      {interactionId, id, status?, content?}
    /_ctl/raw                 {id, body}: /interactions/:id answers body (any JSON) as is,
                              and the list shows id (a malformed record)
    /_ctl/delete              {id}: the interaction and its messages are gone (list and
                              record: 404), with no event: the old server has no delete
                              route or event; its store is in memory, so what it loses
                              (all of it, on a restart) just stops being listed
    /_ctl/junk                {bytes}: sends every open stream one "data:" line of that many
                              bytes (not JSON), to check a client's bounded line buffer
    /_ctl/drop                {hold?: bool}: closes every open stream; with hold, new
                              streams get 503 until /_ctl/release
    /_ctl/release             streams are served again
    GET /_ctl/dump            every well-formed record, oldest first, as GET /interactions/:id
    GET /_ctl/streams         {"open": N, "served": N}: streams open now, and ever opened
Each change is stored first, then sent to every open stream.

Usage: fake_legacy_server.py --port-file F [--token T] [--keepalive SECS]
It binds 127.0.0.1 on a free port, writes the port to F, and serves until
SIGTERM.
"""
import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.order = []     # interaction ids, oldest first
        self.inter = {}     # id -> interaction
        self.msgs = {}      # id -> [message]
        self.raw = {}       # id -> body served as is
        self.streams = []   # queues of open streams
        self.served = 0
        self.hold = False
        self.next_event = 1

    def emit(self, kind, data):
        with self.lock:
            ev = {"type": kind, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "data": data}
            eid = self.next_event
            self.next_event += 1
            for q in self.streams:
                q.put((eid, ev))

    def record(self, iid):
        return {"interaction": self.inter[iid], "messages": self.msgs[iid]}


def listing(store):
    out = []
    with store.lock:
        for iid in store.order:
            if iid in store.raw:
                out.append({"id": iid})
                continue
            ms = store.msgs[iid]
            item = dict(store.inter[iid])
            item["messageCount"] = len(ms)
            if ms:
                item["lastMessage"] = ms[-1]
            item["hasUnprocessedMessages"] = any(m["status"] in ("pending", "processing")
                                                 for m in ms)
            out.append(item)
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self):
        tok = self.server.token
        if not tok or self.path.startswith("/_ctl/"):
            return True
        if self.headers.get("Authorization") == "Bearer " + tok:
            return True
        self.reply(401, {"error": "Unauthorized"})
        return False

    def do_GET(self):
        st = self.server.store
        if not self.authorised():
            return
        if self.path == "/interactions":
            return self.reply(200, listing(st))
        if self.path.startswith("/interactions/"):
            iid = self.path[len("/interactions/"):]
            with st.lock:
                if iid in st.raw:
                    return self.reply(200, st.raw[iid])
                if iid in st.inter:
                    return self.reply(200, st.record(iid))
            return self.reply(404, {"error": "Interaction not found"})
        if self.path == "/stream":
            return self.stream()
        if self.path == "/_ctl/dump":
            with st.lock:
                return self.reply(200, [st.record(i) for i in st.order if i not in st.raw])
        if self.path == "/_ctl/streams":
            with st.lock:
                return self.reply(200, {"open": len(st.streams), "served": st.served})
        self.reply(404, {"error": "Not found"})

    def stream(self):
        st = self.server.store
        q = queue.Queue()
        with st.lock:
            if st.hold:
                return self.reply(503, {"error": "held"})
            st.streams.append(q)
            st.served += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(b": connected\n\n")
            self.wfile.flush()
            while True:
                try:
                    item = q.get(timeout=self.server.keepalive)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if item is None:
                    break
                eid, ev = item
                if isinstance(ev, bytes):
                    self.wfile.write(ev)
                    self.wfile.flush()
                    continue
                # Even events end their lines with CRLF (SSE allows both).
                eol = b"\r\n" if eid % 2 == 0 else b"\n"
                self.wfile.write(b"id: %d%sdata: %s%s%s" % (eid, eol, json.dumps(ev).encode(),
                                                          eol, eol))
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with st.lock:
                if q in st.streams:
                    st.streams.remove(q)

    def do_POST(self):
        st = self.server.store
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "bad JSON"})
        fn = CONTROLS.get(self.path)
        if not fn:
            return self.reply(404, {"error": "Not found"})
        try:
            out = fn(st, body)
        except (KeyError, ValueError) as e:
            return self.reply(400, {"error": repr(e)})
        self.reply(200, dict({"ok": True}, **(out or {})))


def c_interaction(st, b):
    inter = {"id": b["id"], "source": b.get("source", "desktop"), "type": b.get("type", "query"),
             "createdAt": b["createdAt"], "metadata": b.get("metadata", {})}
    with st.lock:
        if b["id"] in st.inter:
            raise ValueError("exists")
        st.order.append(b["id"])
        st.inter[b["id"]] = inter
        st.msgs[b["id"]] = []
    st.emit("interaction:created", {"interaction": inter})


def c_interaction_update(st, b):
    with st.lock:
        inter = st.inter[b["id"]]
        inter["metadata"] = b["metadata"]
    st.emit("interaction:updated", {"interaction": inter})


def c_message(st, b):
    m = {k: b[k] for k in ("id", "interactionId", "role", "content", "timestamp", "status")}
    if "metadata" in b:
        m["metadata"] = b["metadata"]
    with st.lock:
        st.msgs[b["interactionId"]].append(m)
    st.emit("message:added", {"message": m, "interactionId": m["interactionId"]})


def c_message_update(st, b):
    with st.lock:
        m = next(x for x in st.msgs[b["interactionId"]] if x["id"] == b["id"])
        for k in ("status", "content"):
            if k in b:
                m[k] = b[k]
    st.emit("message:updated", {"message": m, "interactionId": m["interactionId"]})


def c_raw(st, b):
    with st.lock:
        st.order.append(b["id"])
        st.raw[b["id"]] = b["body"]
    st.emit("interaction:created", {"interaction": {"id": b["id"]}})


def c_delete(st, b):
    with st.lock:
        st.order.remove(b["id"])
        st.inter.pop(b["id"], None)
        st.msgs.pop(b["id"], None)
        st.raw.pop(b["id"], None)


def c_junk(st, b):
    line = b"data: " + b"x" * int(b["bytes"]) + b"\n\n"
    with st.lock:
        for q in st.streams:
            q.put((0, line))
        return {"streams": len(st.streams)}


def c_drop(st, b):
    with st.lock:
        st.hold = bool(b.get("hold"))
        n = len(st.streams)
        for q in st.streams:
            q.put(None)
        st.streams = []
    return {"dropped": n}


def c_release(st, b):
    with st.lock:
        st.hold = False


CONTROLS = {"/_ctl/interaction": c_interaction, "/_ctl/interaction_update": c_interaction_update,
            "/_ctl/message": c_message, "/_ctl/message_update": c_message_update,
            "/_ctl/raw": c_raw, "/_ctl/delete": c_delete, "/_ctl/junk": c_junk, "/_ctl/drop": c_drop,
            "/_ctl/release": c_release}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token")
    ap.add_argument("--keepalive", type=float, default=1.0)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.store = Store()
    srv.token = a.token
    srv.keepalive = a.keepalive
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
