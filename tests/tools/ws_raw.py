#!/usr/bin/env python3
"""ws_raw.py — a raw WebSocket client (python3 standard library) for the
abuse cases of test_gw_ws.sh: frames the `phoenix` client never sends.

Usage: ws_raw.py PORT TOKEN CASE [READY_FILE UNSTALL_FILE]
Prints one line: the outcome, e.g. "close 1002", "reply ok", "status 401".
Cases: unmasked, oversized, badutf8, trickle (handshake one byte at a time,
then a heartbeat), garbage (bytes that are no frame right after the
handshake, in the same packet), joins (10,000 joins on one socket, then a
heartbeat), binary, fragments (a heartbeat in 3 fragments), ping, pieces
(frames cut across reads after the socket rested: see pieces()), hold N
(N sockets open until UNSTALL_FILE exists: see hold()), stall
(a 4 KiB receive buffer, joins the team topic, creates READY_FILE, reads
nothing until UNSTALL_FILE exists, then drains: "eof BYTES", "reset BYTES"
or "open BYTES" (nothing for 10 s) — how it ended and the bytes it got).
"""
import base64
import json
import os
import socket
import struct
import sys
import threading
import time

PORT, TOKEN, CASE = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def handshake(extra=b"", trickle=False, rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect(("127.0.0.1", PORT))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    head = ("GET /socket/websocket?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (TOKEN, key)).encode()
    if trickle:
        for b in head:
            s.send(bytes([b]))
            time.sleep(0.002)
    else:
        s.sendall(head + extra)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            raise SystemExit("closed before the handshake answer")
        data += d
    status = data.split(b"\r\n")[0].split(b" ")[1].decode()
    if status != "101":
        print("status", status)
        raise SystemExit(0)
    return s, data.partition(b"\r\n\r\n")[2]


def frame(opcode, payload, mask=True, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Reader:
    def __init__(self, s, buf):
        self.s, self.buf = s, buf

    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        b0, b1 = self.need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.need(8))[0]
        return b0 & 0x0F, self.need(n)


def until_close_or_reply(r, ref=None):
    """Reads frames: 'close CODE', or the phx_reply to ref."""
    try:
        while True:
            op, payload = r.frame()
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return "close %d" % code
            if op == 1 and ref is not None:
                msg = json.loads(payload)
                if msg[1] == ref and msg[3] == "phx_reply":
                    return "reply " + msg[4]["status"]
            if op == 10 and ref == "pong":
                return "pong"
    except (EOFError, OSError):
        return "eof"


def heartbeat(ref="hb"):
    return frame(1, json.dumps([None, ref, "phoenix", "heartbeat", {}]).encode())


def main():
    if CASE == "unmasked":
        s, rest = handshake()
        s.sendall(frame(1, b'[null,"1","phoenix","heartbeat",{}]', mask=False))
        print(until_close_or_reply(Reader(s, rest), "1"))
    elif CASE == "oversized":
        s, rest = handshake()
        big = frame(1, b"x" * (2 * 1024 * 1024))
        try:
            s.sendall(big)
        except OSError:
            pass
        print(until_close_or_reply(Reader(s, rest)))
    elif CASE == "badutf8":
        s, rest = handshake()
        s.sendall(frame(1, b'[null,"1","phoenix","heartbeat",{"x":"\xff\xfe"}]'))
        print(until_close_or_reply(Reader(s, rest), "1"))
    elif CASE == "binary":
        s, rest = handshake()
        s.sendall(frame(2, b"\x00\x01\x02"))
        print(until_close_or_reply(Reader(s, rest)))
    elif CASE == "trickle":
        s, rest = handshake(trickle=True)
        s.sendall(heartbeat())
        print(until_close_or_reply(Reader(s, rest), "hb"))
    elif CASE == "garbage":
        s, rest = handshake(extra=b"\x81\x05hello-not-masked\xff\xff\xff")
        print(until_close_or_reply(Reader(s, rest), "hb"))
    elif CASE == "fragments":
        s, rest = handshake()
        text = json.dumps([None, "f", "phoenix", "heartbeat", {}]).encode()
        s.sendall(frame(1, text[:5], fin=False) + frame(0, text[5:10], fin=False) + frame(0, text[10:]))
        print(until_close_or_reply(Reader(s, rest), "f"))
    elif CASE == "ping":
        s, rest = handshake()
        s.sendall(frame(9, b"are you there"))
        print(until_close_or_reply(Reader(s, rest), "pong"))
    elif CASE == "joins":
        s, rest = handshake()
        r = Reader(s, rest)
        conv = "00000000-0000-4000-8000-%012d"
        batch = b"".join(frame(1, json.dumps([str(i), str(i), "conversation:" + conv % i,
                                                  "phx_join", {}]).encode())
                         for i in range(10000))
        # Sent from a thread while this one reads: the gateway stops reading
        # while its answers wait, so a client that does not read would stall.
        threading.Thread(target=lambda: s.sendall(batch + heartbeat("after")), daemon=True).start()
        errors = 0
        try:
            while True:
                op, payload = r.frame()
                if op == 8:
                    print("close", struct.unpack("!H", payload[:2])[0])
                    return
                msg = json.loads(payload)
                if msg[1] == "after":
                    print("reply", msg[4]["status"], "errors", errors)
                    return
                if msg[3] == "phx_reply" and msg[4]["status"] == "error":
                    errors += 1
        except (EOFError, OSError):
            print("eof")
    elif CASE == "pieces":
        pieces()
    elif CASE == "hold":
        hold(int(sys.argv[4]), *sys.argv[5:7])
    elif CASE == "stall":
        stall(*sys.argv[4:6])
    else:
        raise SystemExit("unknown case " + CASE)


def pieces():
    """A heartbeat; then, one byte at a time, a message in 3 fragments (a
    ping between them, the last with a 16-bit length) and a heartbeat of
    200 bytes: frames and a fragmented message cut across reads, after the
    socket came to rest. Prints "replies N pong P" (3 and 1 expected)."""
    s, rest = handshake()
    r = Reader(s, rest)
    s.sendall(heartbeat("p1"))
    if until_close_or_reply(r, "p1") != "reply ok":
        print("no reply to the first heartbeat")
        return
    time.sleep(0.2)
    text = json.dumps([None, "p2", "phoenix", "heartbeat", {"pad": "y" * 150}]).encode()
    big = json.dumps([None, "p3", "phoenix", "heartbeat", {"pad": "z" * 150}]).encode()
    data = (frame(1, text[:8], fin=False) + frame(9, b"mid") + frame(0, text[8:20], fin=False) +
            frame(0, text[20:]) + frame(1, big))
    for b in data:
        s.send(bytes([b]))
        time.sleep(0.002)
    replies, pongs = 1, 0
    try:
        while replies < 3 or pongs < 1:
            op, payload = r.frame()
            if op == 8:
                print("close", struct.unpack("!H", payload[:2])[0])
                return
            if op == 10:
                pongs += payload == b"mid"
            elif op == 1:
                msg = json.loads(payload)
                replies += msg[3] == "phx_reply" and msg[4]["status"] == "ok"
    except (EOFError, OSError):
        pass
    print("replies", replies, "pong", pongs)


def hold(n, ready, release):
    """Opens n sockets (each answers a heartbeat), creates READY_FILE, keeps
    them until RELEASE_FILE exists. Prints "held N"."""
    socks = []
    for i in range(n):
        s, rest = handshake()
        s.sendall(heartbeat("h%d" % i))
        if until_close_or_reply(Reader(s, rest), "h%d" % i) != "reply ok":
            print("socket", i, "not served")
            return
        socks.append(s)
    open(ready, "w").close()
    while not os.path.exists(release):
        time.sleep(0.05)
    print("held", len(socks))


def stall(ready, unstall):
    s, rest = handshake(rcvbuf=4096)
    s.sendall(frame(1, json.dumps(["1", "1", "team", "phx_join", {}]).encode()))
    r = Reader(s, rest)
    if until_close_or_reply(r, "1") != "reply ok":
        print("join failed")
        return
    open(ready, "w").close()
    while not os.path.exists(unstall):
        time.sleep(0.1)
    got, end = 0, "open"
    s.settimeout(10)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                end = "eof"
                break
            got += len(d)
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        pass
    print(end, got)


main()
