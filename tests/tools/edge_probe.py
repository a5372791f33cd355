#!/usr/bin/env python3
"""edge_probe.py — raw-socket clients for tests/cluster/test_gw_edge.sh
(python3 standard library only). Each mode prints one JSON line.

  unauth-big PORT [TOKEN]   POST /api/conversations declaring a 10 MiB body,
                            sends only the head: {"status", "secs", "sent_body"}
  conns PORT N SRC          opens N idle connections from SRC, then one more:
                            {"extra": "closed"|"open"} (closed = refused
                            before any byte), and keeps the N open until
                            stdin closes (prints {"held": N} first)
  trickle-head PORT SECS    sends "GET /health ..." one byte every SECS, never
                            finishing: {"status", "secs", "sent"}
  trickle-body PORT TOKEN SECS  POST head complete, a 1000-byte body one byte
                            every SECS: {"status", "secs", "sent"}
  trickle-next PORT SECS    one GET /health (kept alive), then the next head
                            one byte every SECS: {"first", "status", "secs"}
"status" is the HTTP status of what came back (0 when the connection just
closed without an answer).
"""
import json
import socket
import sys
import time


def connect(port, src=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def status_of(data):
    if data.startswith(b"HTTP/1.1 "):
        try:
            return int(data[9:12])
        except ValueError:
            return -1
    return 0


def read_all(s, timeout):
    """Reads until EOF, reset or timeout; returns the bytes."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout, BrokenPipeError):
        pass
    return data


def trickle(s, payload, every, budget):
    """Sends payload one byte every `every` seconds until the peer answers or
    closes, or budget seconds pass. Returns (bytes back, secs, bytes sent)."""
    t0 = time.monotonic()
    sent = 0
    s.setblocking(False)
    back = b""
    while time.monotonic() - t0 < budget:
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            back += chunk
            if b"\r\n\r\n" in back:
                s.setblocking(True)
                back += read_all(s, 2)
                break
        except BlockingIOError:
            pass
        except ConnectionResetError:
            break
        if sent < len(payload):
            try:
                s.send(payload[sent:sent + 1])
                sent += 1
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                pass
        time.sleep(every)
    return back, time.monotonic() - t0, sent


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "unauth-big":
        token = sys.argv[3] if len(sys.argv) > 3 else None
        s = connect(port)
        head = ("POST /api/conversations HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: 10485760\r\n")
        if token:
            head += "Authorization: Bearer %s\r\n" % token
        t0 = time.monotonic()
        s.sendall((head + "\r\n").encode())
        data = read_all(s, 10)
        print(json.dumps({"status": status_of(data), "secs": round(time.monotonic() - t0, 2),
                          "sent_body": 0, "body": data.split(b"\r\n\r\n", 1)[-1].decode(
                              "utf-8", "replace")}))
    elif mode == "conns":
        n, src = int(sys.argv[3]), sys.argv[4]
        held = [connect(port, src) for _ in range(n)]
        extra = connect(port, src)
        extra.settimeout(3)
        try:
            got = extra.recv(1)
            state = "closed" if got == b"" else "open"
        except ConnectionResetError:
            state = "closed"
        except socket.timeout:
            state = "open"
        print(json.dumps({"held": len(held), "extra": state}), flush=True)
        sys.stdin.read()
        for s in held:
            s.close()
    elif mode == "trickle-head":
        every = float(sys.argv[3])
        s = connect(port)
        payload = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000
        back, secs, sent = trickle(s, payload, every, 60)
        print(json.dumps({"status": status_of(back), "secs": round(secs, 2), "sent": sent,
                          "body": back.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")}))
    elif mode == "trickle-body":
        token, every = sys.argv[3], float(sys.argv[4])
        s = connect(port)
        s.sendall(("POST /api/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" % token)
                  .encode())
        back, secs, sent = trickle(s, b"{" + b" " * 999, every, 60)
        print(json.dumps({"status": status_of(back), "secs": round(secs, 2), "sent": sent,
                          "body": back.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")}))
    elif mode == "trickle-next":
        every = float(sys.argv[3])
        s = connect(port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        first = s.recv(65536)
        back, secs, sent = trickle(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000,
                                   every, 60)
        print(json.dumps({"first": status_of(first), "status": status_of(back),
                          "secs": round(secs, 2), "sent": sent}))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
