// phx_client.js — drives the gateway's /socket/websocket with the real
// `phoenix` npm client (transport: the `ws` package) for test_gw_ws.sh.
// Usage: node phx_client.js SCENARIO PORT TOKEN [CONV [LAST_EVENT_ID]]
//        node phx_client.js decide PORT TOKEN TOPIC PERMISSION_ID approve|deny
// Prints one JSON object per line ({"step": ..., ...}); exits 0 when the
// scenario ran to its end (the shell checks the lines), 2 on a timeout.
"use strict";
const { Socket } = require("phoenix");
const WebSocket = require("ws");

const [scenario, port, token, conv, lastId, decision] = process.argv.slice(2);
const out = (o) => console.log(JSON.stringify(o));
const done = (code) => setTimeout(() => process.exit(code), 50);
setTimeout(() => {
  out({ step: "timeout" });
  process.exit(2);
}, 60000);

function connect(extra) {
  const socket = new Socket(`ws://127.0.0.1:${port}/socket`, {
    transport: WebSocket,
    params: { token },
    heartbeatIntervalMs: 500,
    reconnectAfterMs: () => 60000,
    ...extra,
  });
  socket.onError(() => out({ step: "socket_error" }));
  socket.onClose((e) => out({ step: "socket_close", code: e && e.code }));
  socket.connect();
  return socket;
}

// Joins conversation CONV, records every pushed event, posts a message with
// message:create, waits for turn.completed, then leaves.
function turn() {
  const socket = connect();
  const ch = socket.channel(`conversation:${conv}`, {});
  let waits = 2; // turn.completed and the message:create reply, in any order
  const leave = () => {
    if (--waits === 0) ch.leave().receive("ok", () => out({ step: "left" }));
  };
  ch.onMessage = (event, payload) => {
    if (event && !event.startsWith("phx_") && !event.startsWith("chan_reply_")) {
      out({ step: "event", event, id: payload.id || null, text: payload.text || null,
            content: (payload.action && payload.action.message && payload.action.message.content) || null });
      if (event === "turn.completed") leave();
    }
    return payload;
  };
  ch.onClose(() => {
    out({ step: "channel_closed" });
    socket.disconnect(() => done(0));
  });
  ch.join()
    .receive("ok", (r) => {
      out({ step: "joined", response: r });
      ch.push("nope", {}).receive("error", (e) => out({ step: "unknown_event", reply: e }));
      ch.push("message:create", { content: "" })
        .receive("error", (e) => out({ step: "create_invalid", reply: e }));
      ch.push("message:create", { content: "hello over phoenix" })
        .receive("ok", (r2) => { out({ step: "created", message: r2.message }); leave(); })
        .receive("error", (e) => out({ step: "create_error", reply: e }));
    })
    .receive("error", (e) => {
      out({ step: "join_error", reply: e });
      done(0);
    });
}

// Joins CONV, starts a slow turn (the cluster runs echo with a delay per
// word), cancels it on turn.started, cancels again (nothing runs: 409), and
// decides permission requests that are not there or not named.
function cancel() {
  const socket = connect();
  const ch = socket.channel(`conversation:${conv}`, {});
  ch.onMessage = (event, payload) => {
    if (event === "turn.started") {
      ch.push("conversation:cancel", {})
        .receive("ok", (r) => out({ step: "cancelled", reply: r }))
        .receive("error", (e) => out({ step: "cancel_error", reply: e }));
    }
    if (event === "turn.cancelled") {
      out({ step: "event", event });
      ch.push("conversation:cancel", {})
        .receive("error", (e) => out({ step: "cancel_idle", reply: e }));
      // The deny is refused at once, the approve after a node's answer:
      // disconnect once both replies are in, whatever their order.
      let replies = 0;
      const replied = () => {
        if (++replies === 2) socket.disconnect(() => done(0));
      };
      ch.push("permission:approve", { id: "00000000-0000-4000-8000-000000000000" })
        .receive("error", (e) => { out({ step: "approve_unknown", reply: e }); replied(); });
      ch.push("permission:deny", { reason: "no id" })
        .receive("error", (e) => { out({ step: "deny_without_id", reply: e }); replied(); });
    }
    return payload;
  };
  ch.join().receive("ok", () => {
    ch.push("message:create", { content: "one two three four five six seven eight nine ten" });
  });
}

// Joins CONV with last_event_id 0 (every stored event first), posts a
// message, cuts the socket at that turn's first message.delta, then joins
// again on a new socket with last_event_id = the last id received and reads
// up to that turn's turn.completed. Prints each stored event's id and which
// socket got it.
function resume() {
  let last = 0;
  let cut = false;
  const first = connect();
  const a = first.channel(`conversation:${conv}`, { last_event_id: 0 });
  a.onMessage = (event, payload) => {
    if (cut) return payload;
    if (payload && payload.id && event && !event.startsWith("phx_")) {
      out({ step: "stored", socket: "a", id: payload.id, event });
      last = payload.id;
    }
    if (event === "message.delta") {
      cut = true; // deltas are live only: the new turn is under way
      first.disconnect(() => again());
    }
    return payload;
  };
  a.join().receive("ok", () => {
    a.push("message:create", { content: "one two three four five six seven eight" });
  });
  function again() {
    out({ step: "cut", last });
    const second = connect();
    const b = second.channel(`conversation:${conv}`, { last_event_id: last });
    b.onMessage = (event, payload) => {
      if (payload && payload.id && event && !event.startsWith("phx_")) {
        out({ step: "stored", socket: "b", id: payload.id, event });
        if (event === "turn.completed") second.disconnect(() => done(0));
      }
      return payload;
    };
    b.join().receive("error", (e) => out({ step: "rejoin_error", reply: e }));
  }
}

// Joins CONV with a token of another team (TOKEN), and an unknown topic.
function refused() {
  const socket = connect();
  let n = 0;
  const finish = () => {
    if (++n === 2) {
      socket.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: socket.makeRef() });
      socket.disconnect(() => done(0));
    }
  };
  socket.channel(`conversation:${conv}`, {}).join()
    .receive("ok", () => { out({ step: "foreign_joined" }); finish(); })
    .receive("error", (e) => { out({ step: "foreign_refused", reply: e }); finish(); });
  socket.channel("room:lobby", {}).join()
    .receive("ok", () => { out({ step: "odd_joined" }); finish(); })
    .receive("error", (e) => { out({ step: "odd_refused", reply: e }); finish(); });
}

// Joins "team" with last_event_id LAST_EVENT_ID and CONV; posts a message on
// CONV's channel; records every event the team channel gets (stored ones with
// their id and conversation) up to CONV's turn.completed; then tries
// message:create on the team topic (an error: it needs a conversation).
function team() {
  const socket = connect();
  const t = socket.channel("team", { last_event_id: Number(lastId) });
  const ch = socket.channel(`conversation:${conv}`, {});
  let joined = 0;
  const start = () => {
    if (++joined === 2) ch.push("message:create", { content: "hello team" });
  };
  t.onMessage = (event, payload) => {
    if (event && !event.startsWith("phx_") && !event.startsWith("chan_reply_")) {
      out({ step: "team_event", event, id: payload.id || null,
            conversation: payload.conversation_id || null });
      if (event === "turn.completed" && payload.conversation_id === conv) {
        t.push("message:create", { content: "nowhere" })
          .receive("error", (e) => out({ step: "team_create", reply: e }));
        t.push("permission:approve", { id: "00000000-0000-4000-8000-000000000000" })
          .receive("error", (e) => {
            out({ step: "team_approve_unknown", reply: e });
            socket.disconnect(() => done(0));
          });
      }
    }
    return payload;
  };
  t.join().receive("ok", () => { out({ step: "team_joined" }); start(); })
    .receive("error", (e) => { out({ step: "team_join_error", reply: e }); done(0); });
  ch.join().receive("ok", start);
}

// Joins TOPIC ("team", or a conversation id) and decides permission request
// LAST_EVENT_ID's argument (a request id) with permission:approve or :deny.
function decide() {
  const socket = connect();
  const topic = conv === "team" ? "team" : `conversation:${conv}`;
  const ch = socket.channel(topic, {});
  ch.join().receive("ok", () => {
    const body = decision === "deny" ? { id: lastId, reason: "denied over phoenix" } : { id: lastId };
    ch.push(`permission:${decision}`, body)
      .receive("ok", (r) => { out({ step: "decided", reply: r }); socket.disconnect(() => done(0)); })
      .receive("error", (e) => { out({ step: "decide_error", reply: e }); socket.disconnect(() => done(0)); });
  }).receive("error", (e) => { out({ step: "join_error", reply: e }); done(0); });
}

// A bad token: the handshake is refused (HTTP 401), the client sees an error.
function badtoken() {
  const socket = connect();
  socket.onError(() => {
    out({ step: "refused_at_connect" });
    socket.disconnect(() => done(0));
  });
  socket.onOpen(() => {
    out({ step: "opened" });
    done(0);
  });
}

({ turn, cancel, resume, refused, badtoken, team, decide })[scenario]();
