#!/usr/bin/env python3
"""sse_probe.py — a small Server-Sent Events client for the cluster tests
(python3 standard library only).

Reads an SSE stream and prints one JSON line per event on stdout:
    {"id": 12 | null, "event": "message.created", "data": {...} | "text"}
then one last line {"end": REASON, "events": N, "bytes": N} where REASON is
count | stored | until | idle | timeout | eof | reset. It stops (and closes the
connection, with a TCP reset when --rst is given) as soon as one condition
holds: --count events read, --stored events with an id read, the
--until-count-th event of type --until read (the first by default), --idle
seconds without an event (keep-alive comments do not count), --timeout
seconds in all, or the server ended the stream. A non-200 answer prints
{"status": N, "body": "..."} and exits 2.

--stall SECS: connect with a small receive buffer (--rcvbuf), send the
request, then read nothing for SECS seconds, or until --stall-file exists
(a stalled reader); afterwards drain what is left and report how the stream
ended (eof/reset/timeout) and the bytes received, as the "end" line.

--ready-file F: create F once the response headers (and the first chunk)
arrived, so that a test can post only after the stream is open.

--header "Name: value" (repeatable) adds a request header. --headers-only
prints {"status": N, "headers": {lowercased name: value}} once the response
headers arrived, and exits.
--raw: each event line also carries "raw", the data text exactly as sent
(to check its bytes, e.g. its JSON spacing).
"""
import argparse
import json
import os
import socket
import struct
import sys
import time
from urllib.parse import urlsplit


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("--token", default=os.environ.get("BICKY_TOKEN", ""))
    p.add_argument("--last-event-id")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--stored", type=int, default=0)
    p.add_argument("--until", default="")
    p.add_argument("--until-count", type=int, default=1)
    p.add_argument("--idle", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--rst", action="store_true")
    p.add_argument("--ready-file")
    p.add_argument("--stall", type=float, default=0.0)
    p.add_argument("--rcvbuf", type=int, default=4096)
    p.add_argument("--stall-file")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--headers-only", action="store_true")
    p.add_argument("--raw", action="store_true")
    return p.parse_args()


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Stream:
    """An HTTP/1.1 GET whose body is read incrementally (chunked or not)."""

    def __init__(self, args):
        u = urlsplit(args.url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if args.stall:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        self.sock.settimeout(args.timeout)
        self.sock.connect((u.hostname, u.port or 80))
        path = u.path + ("?" + u.query if u.query else "")
        lines = [
            "GET %s HTTP/1.1" % path,
            "Host: %s" % u.netloc,
            "Accept: text/event-stream",
            "Authorization: Bearer %s" % args.token,
        ]
        if args.last_event_id is not None:
            lines.append("Last-Event-ID: %s" % args.last_event_id)
        lines.extend(args.header)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""  # bytes received, not yet decoded
        self.body = b""  # decoded body, not yet parsed
        self.total = 0  # body bytes decoded
        self.chunked = False
        self.chunk_left = 0  # data bytes left in the current chunk
        self.crlf_left = 0  # bytes of the CRLF after a chunk still to skip
        self.done = False  # the server ended the body

    def recv(self, timeout):
        """Reads once; returns False on EOF. Raises socket.timeout."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            return False
        self.raw += data
        return True

    def headers(self, deadline):
        while b"\r\n\r\n" not in self.raw:
            if not self.recv(max(0.01, deadline - time.monotonic())):
                raise EOFError("closed before the headers")
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in hdrs.get("transfer-encoding", "").lower()
        return status, hdrs

    def decode(self):
        """Moves decoded body bytes from raw to body."""
        if not self.chunked:
            self.body += self.raw
            self.total += len(self.raw)
            self.raw = b""
            return
        while self.raw:
            if self.crlf_left:
                k = min(self.crlf_left, len(self.raw))
                self.raw = self.raw[k:]
                self.crlf_left -= k
                continue
            if self.chunk_left == 0:
                if b"\r\n" not in self.raw:
                    return
                line, self.raw = self.raw.split(b"\r\n", 1)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.done = True
                    self.raw = b""
                    return
                self.chunk_left = size
                continue
            data = self.raw[: self.chunk_left]
            self.raw = self.raw[len(data) :]
            self.chunk_left -= len(data)
            self.body += data
            self.total += len(data)
            if self.chunk_left == 0:
                self.crlf_left = 2

    def close(self, rst):
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def events_from(stream):
    """Parses complete events out of stream.body; yields (id, type, data, text)."""
    while b"\n\n" in stream.body:
        block, stream.body = stream.body.split(b"\n\n", 1)
        eid, etype, data = None, None, []
        for line in block.decode("utf-8", "replace").split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                eid = int(value)
            elif field == "event":
                etype = value
            elif field == "data":
                data.append(value)
        if etype is None and not data:
            continue  # a comment block
        text = "\n".join(data)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        yield eid, etype or "message", parsed, text


def read_mode(args, s, start):
    n = stored = until = 0
    last_event = time.monotonic()
    reason = "eof"
    while True:
        for eid, etype, data, text in events_from(s):
            line = {"id": eid, "event": etype, "data": data}
            if args.raw:
                line["raw"] = text
            emit(line)
            last_event = time.monotonic()
            n += 1
            stored += eid is not None
            if args.count and n >= args.count:
                return "count", n
            if args.stored and stored >= args.stored:
                return "stored", n
            until += bool(args.until) and etype == args.until
            if args.until and until >= args.until_count:
                return "until", n
        if s.done:
            return "eof", n
        now = time.monotonic()
        wait = start + args.timeout - now
        if args.idle:
            wait = min(wait, last_event + args.idle - now)
        if wait <= 0:
            return ("idle" if args.idle and now - last_event >= args.idle else "timeout"), n
        try:
            if not s.recv(wait):
                return reason, n
        except socket.timeout:
            continue
        except ConnectionResetError:
            return "reset", n
        s.decode()


def stall_mode(args, s):
    end = time.monotonic() + args.stall
    while time.monotonic() < end:
        if args.stall_file and os.path.exists(args.stall_file):
            break
        time.sleep(0.05)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            if not s.recv(max(0.01, deadline - time.monotonic())):
                s.decode()
                return "eof"
        except socket.timeout:
            break
        except ConnectionResetError:
            return "reset"
        s.decode()
        s.body = b""  # only the byte count matters
        if s.done:
            return "eof"
    return "timeout"


def main():
    args = parse_args()
    start = time.monotonic()
    try:
        s = Stream(args)
        status, hdrs = s.headers(start + args.timeout)
    except (OSError, EOFError, ValueError, IndexError) as e:
        emit({"end": "error", "error": str(e), "events": 0, "bytes": 0})
        return 1
    if status != 200:
        s.decode()
        deadline = time.monotonic() + 2
        while not s.done and time.monotonic() < deadline:
            try:
                if not s.recv(0.5):
                    break
            except (socket.timeout, OSError):
                break
            s.decode()
        emit({"status": status, "body": s.body.decode("utf-8", "replace")})
        s.close(False)
        return 2
    if args.headers_only:
        emit({"status": status, "headers": hdrs})
        s.close(False)
        return 0
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    if args.stall:
        reason = stall_mode(args, s)
        emit({"end": reason, "events": 0, "bytes": s.total})
        s.close(args.rst)
        return 0
    s.decode()
    reason, n = read_mode(args, s, start)
    emit({"end": reason, "events": n, "bytes": s.total})
    s.close(args.rst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
