// phx_rtt.js — message:create round trips over WebSockets with the real
// `phoenix` npm client (P10e of bench/run): SOCKETS sockets, each joined to
// one conversation of IDS_FILE, each pushing message:create and waiting for
// its phx_reply before the next (closed loop) for SECONDS. Prints
// PHX_JSON {"sockets","seconds","ok","errors","per_s","p50_ms","p99_ms"}.
// Usage: node phx_rtt.js PORT TOKEN IDS_FILE SOCKETS SECONDS
"use strict";
const fs = require("fs");
const { Socket } = require("phoenix");
const WebSocket = require("ws");

const [port, token, idsFile, nsock, secs] = process.argv.slice(2);
const ids = fs.readFileSync(idsFile, "utf8").split("\n").filter((l) => l.trim());
const sockets = Math.min(Number(nsock), ids.length);
const lat = [];
let ok = 0;
let errors = 0;
let joined = 0;
let t0 = 0;
let end = 0;
let running = sockets;

function finish() {
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : 0);
  const elapsed = (Date.now() - t0) / 1000;
  console.log("PHX_JSON " + JSON.stringify({
    sockets, seconds: Number(elapsed.toFixed(2)), ok, errors,
    per_s: Math.round(ok / elapsed), p50_ms: Number(pct(50).toFixed(2)), p99_ms: Number(pct(99).toFixed(2)),
  }));
  process.exit(0);
}

function loop(ch) {
  if (Date.now() >= end) {
    if (--running === 0) finish();
    return;
  }
  const t = process.hrtime.bigint();
  ch.push("message:create", { content: "rtt" }, 30000)
    .receive("ok", () => {
      ok++;
      lat.push(Number(process.hrtime.bigint() - t) / 1e6);
      loop(ch);
    })
    .receive("error", () => { errors++; loop(ch); })
    .receive("timeout", () => { errors++; loop(ch); });
}

const chans = [];
for (let i = 0; i < sockets; i++) {
  const socket = new Socket(`ws://127.0.0.1:${port}/socket`, {
    transport: WebSocket, params: { token }, heartbeatIntervalMs: 20000,
  });
  socket.connect();
  const ch = socket.channel(`conversation:${ids[i].trim()}`, {});
  chans.push(ch);
  ch.join().receive("ok", () => {
    if (++joined === sockets) {
      t0 = Date.now();
      end = t0 + Number(secs) * 1000;
      chans.forEach(loop);
    }
  }).receive("error", (e) => {
    console.error("join failed", JSON.stringify(e));
    process.exit(1);
  });
}
setTimeout(() => { console.error("phx_rtt: timed out"); process.exit(2); }, (Number(secs) + 120) * 1000);
