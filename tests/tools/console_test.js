// console_test.js — drives the gateway's web console in headless Chromium
// (Debian's chromium, through puppeteer-core) against a real cluster, for
// tests/cluster/test_console.sh. Every wait is on a DOM state (60 s bound),
// never a fixed sleep.
// Env: CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_TOKEN2 (another team),
//      CONSOLE_ADMIN_TOKEN (an admin token of CONSOLE_TOKEN's team),
//      CONSOLE_FAKE_PORT (the fake LLM), CONSOLE_GATEWAY_PID (file),
//      CONSOLE_SHOTS (screenshot directory), CONSOLE_CHROMIUM (/usr/bin/chromium).
// Prints one JSON line per check ({"check", "ok", "detail"?}); exits 0 when
// every check passed, 1 otherwise.
"use strict";
const fs = require("fs");
const path = require("path");
const os = require("os");
const puppeteer = require("puppeteer-core");

const URL0 = process.env.CONSOLE_URL;
const ORIGIN = new URL(URL0).origin;
const TOKEN = process.env.CONSOLE_TOKEN;
const TOKEN2 = process.env.CONSOLE_TOKEN2;
const ADMIN = process.env.CONSOLE_ADMIN_TOKEN;
const FAKE = process.env.CONSOLE_FAKE_PORT;
const SHOTS = process.env.CONSOLE_SHOTS;
const T = 60000;
let failures = 0;
let page = null; // the one tab, for a screenshot when a wait fails

const out = (o) => console.log(JSON.stringify(o));
function check(name, ok, detail) {
  out(detail === undefined ? { check: name, ok: !!ok } : { check: name, ok: !!ok, detail });
  if (!ok) failures++;
}

async function api(method, p, body, token) {
  const headers = { Authorization: "Bearer " + (token || TOKEN) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(ORIGIN + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function fake(p, body) {
  await fetch(`http://127.0.0.1:${FAKE}${p}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}
async function script(items) {
  await fake("/_reset");
  await fake("/_script", items);
}
const toolCall = (name, args) => ({ kind: "tool_call", name, arguments: args });

async function until(fn, what) {
  const end = Date.now() + T;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out: " + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "console-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CONSOLE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    userDataDir: userDir,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
    protocolTimeout: 180000,
  });
  page = await browser.newPage();
  page.setDefaultTimeout(T);
  await page.setViewport({ width: 1280, height: 900 });
  const requests = [];
  const problems = [];
  page.on("request", (r) => requests.push({ method: r.method(), url: r.url() }));
  page.on("pageerror", (e) => problems.push("pageerror: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push("console: " + m.text());
  });
  page.on("dialog", async (d) => { problems.push("dialog: " + d.message()); await d.dismiss(); });

  const text = (sel) => page.$eval(sel, (e) => e.textContent);
  // A click through the DOM: immune to the layout moving under the pointer
  // (a reply or a fold arriving between the aim and the click).
  async function press(sel) {
    await page.waitForSelector(sel);
    await page.$eval(sel, (e) => e.click());
  }
  // Sends the message box with the keyboard (Ctrl+Enter).
  async function send(textToSend) {
    await page.focus("#compose-text");
    await page.keyboard.type(textToSend);
    await page.keyboard.down("Control");
    await page.keyboard.press("Enter");
    await page.keyboard.up("Control");
    await page.waitForFunction(() => document.querySelector("#compose-text").value === "");
  }
  async function shots(name) {
    for (const width of [360, 1280]) {
      await page.setViewport({ width, height: 900 });
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
      await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
    }
    await page.setViewport({ width: 1280, height: 900 });
    // Readable at 360 px: nothing wider than the viewport but scrollable tables.
    check(`${name}: screenshots at 360 and 1280 px`, fs.existsSync(path.join(SHOTS, `${name}-360.png`)));
  }
  async function go(hash, sel) {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.waitForSelector(sel);
  }
  async function signIn(token) {
    await page.waitForSelector("#token");
    await page.type("#token", token);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#conv-list");
  }
  const waitText = (sel, want) => page.waitForFunction(
    (s, w) => { const e = document.querySelector(s); return e && e.textContent.includes(w); }, {}, sel, want);

  // ---------------------------------------------------------------- sign in
  await page.goto(URL0, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#token");
  await shots("signin");
  await page.type("#token", "not-a-valid-token");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#signin-error").textContent.length > 0);
  check("a bad token is refused on the sign-in page", (await text("#signin-error")).includes("not valid"));
  await page.$eval("#token", (e) => { e.value = ""; });
  await signIn(TOKEN);
  check("signed in: the conversations page shows", true);
  const stored = await page.evaluate(() => sessionStorage.getItem("bicky.token"));
  check("the token is kept in session storage", stored === TOKEN);
  check("no URL carries the token", !requests.some((r) => r.url.includes(TOKEN)));

  // ---------------------------------------------------------------- a streamed reply
  await page.waitForSelector('#n-strategy option[value="echo"]');
  await page.type("#n-title", "First title");
  await page.select("#n-strategy", "echo");
  await press("#n-create");
  await page.waitForFunction(() => /^#\/c\/[0-9a-f-]{36}$/.test(location.hash));
  const conv1 = (await page.evaluate(() => location.hash)).slice(4);
  await page.waitForSelector('#stream-state[data-state="live"]');
  const words = "one two three four five six seven eight nine ten eleven twelve";
  const msg1 = "hello from the console " + words;
  // Every text the streaming reply shows, in order, seen by a MutationObserver.
  await page.evaluate(() => {
    window.__partials = [];
    new MutationObserver(() => {
      const e = document.querySelector('li.msg[data-role="assistant"][data-status="streaming"] .content');
      const t = e && e.textContent;
      if (t && window.__partials[window.__partials.length - 1] !== t) window.__partials.push(t);
    }).observe(document.querySelector("#transcript"), { childList: true, subtree: true, characterData: true });
  });
  await page.focus("#compose-text");
  await page.keyboard.type(msg1);
  await page.keyboard.down("Control");
  await page.keyboard.press("Enter");
  await page.keyboard.up("Control");
  const reply1 = "echo: " + msg1;
  await page.waitForFunction((full) => {
    const e = document.querySelector('li.msg[data-role="assistant"][data-status="completed"] .content');
    return e && e.textContent === full;
  }, {}, reply1);
  const partials = await page.evaluate(() => window.__partials);
  check("the reply streamed in token by token (each step a prefix of the reply)",
    partials.length >= 3 && partials.every((t) => reply1.startsWith(t)), partials);
  const roles = await page.$$eval("#transcript li.msg", (l) => l.map((e) => e.dataset.role).join(","));
  check("the transcript holds the message and the complete reply once", roles === "user,assistant", roles);
  check("each event shows its source",
    await page.$$eval("#events li", (l) => l.length > 0 && l.every((e) => /^(user|actor|system):/.test(e.querySelector(".source").textContent))));
  await shots("conversation");

  // ---------------------------------------------------------------- revert a title change
  await page.$eval("#title-input", (e) => { e.value = ""; });
  await page.type("#title-input", "Second title");
  await press("#title-save");
  await waitText("#conv-title", "Second title");
  const upd = 'li[data-type="conversation.updated"][data-reverted="no"] button.revert';
  await page.waitForSelector(upd);
  await press(upd);
  await page.waitForFunction(() => document.querySelector("#conv-title").textContent === "First title");
  await page.waitForSelector('li[data-type="conversation.updated"][data-reverted="yes"]');
  await page.waitForSelector('li[data-type="event.reverted"]');
  const c1 = await api("GET", "/api/conversations/" + conv1);
  check("the title change was reverted (in the page and in the API)", c1.body.title === "First title", c1.body.title);

  // ---------------------------------------------------------------- attached actors, live
  await waitText("#actors", "responder (responder) — echo");
  const att = await api("POST", "/api/conversations/" + conv1 + "/actors",
    { name: "notes", strategy: "echo", trigger: { type: "every_n_turns", n: 2 } });
  check("an observer is attached through the API", att.status === 201, att.status);
  await waitText("#actors", "notes (observer) — echo, every 2 turns");
  check("the actors list shows it live, with its trigger", true);

  // ---------------------------------------------------------------- cancel, archive, unarchive
  await send("a long one " + Array.from({ length: 80 }, (_, i) => "c" + i).join(" "));
  await page.waitForSelector("#cancel:not([disabled])");
  await press("#cancel");
  await page.waitForSelector('#events li[data-type="turn.cancelled"]');
  check("a running turn is cancelled from the page", true);
  await page.waitForSelector("#archive:not([disabled])");
  await press("#archive");
  await page.waitForSelector('#conv-status .status[data-status="archived"]');
  await press('li[data-type="conversation.archived"] button.revert');
  await page.waitForSelector('#conv-status .status[data-status="idle"]');
  check("archived, then the archive reverted: idle again", (await api("GET", "/api/conversations/" + conv1)).body.status === "idle");

  // ---------------------------------------------------------------- permissions: approve
  await go("#/conversations", "#conv-list");
  await page.waitForSelector('#n-strategy option[value="gpt"]');
  await page.select("#n-strategy", "gpt");
  await press("#n-create");
  await page.waitForFunction((c) => /^#\/c\//.test(location.hash) && !location.hash.endsWith(c), {}, conv1);
  const conv2 = (await page.evaluate(() => location.hash)).slice(4);
  await page.waitForSelector('#stream-state[data-state="live"]');
  const longArg = "echo approved-in-console # " + "y".repeat(3000) + " end-of-argument";
  await script([toolCall("bash", { command: longArg }), { kind: "text", text: "finished with the tool" }]);
  await send("please run the tool");
  await press('#nav a[data-nav="permissions"]');
  const card = `article.perm[data-tool="bash"]`;
  await page.waitForSelector(card);
  const shown = await page.$eval(card + " pre.json", (e) => e.textContent);
  check("the request shows its full arguments (never cut)", shown.includes(JSON.stringify(longArg).slice(1, -1)), shown.length);
  check("the request names its conversation", (await page.$eval(card + " a.perm-conv", (e) => e.textContent)) === conv2);
  await shots("permissions");
  await press(card + " button.approve");
  await page.waitForFunction(() => !document.querySelector('article.perm[data-tool="bash"]'));
  await go("#/c/" + conv2, '#stream-state[data-state="live"]');
  await page.waitForFunction(() => [...document.querySelectorAll('li.msg[data-role="tool"] .content')]
    .some((e) => e.textContent.includes("approved-in-console")));
  const folded = await page.$eval('li.msg[data-role="tool"] details', (d) => !d.open);
  // Opened with its summary; again if a refresh replaced it meanwhile.
  await page.waitForFunction(() => {
    const d = document.querySelector('li.msg[data-role="tool"] details');
    if (d && !d.open) d.querySelector("summary").click();
    return d && d.open;
  }, { polling: 500 });
  check("approved: the tool's result is in the transcript (folded, opens)", folded);
  await waitText("#transcript", "finished with the tool");
  check("approved: the model's final answer follows", true);

  // ---------------------------------------------------------------- permissions: deny (inline)
  await script([toolCall("bash", { command: "touch /tmp/console-denied" }), { kind: "text", text: "finished after the denial" }]);
  await send("try another one");
  await page.waitForSelector("#conv-perms article.perm");
  await page.type("#conv-perms article.perm input.reason", "not from the console");
  await press("#conv-perms article.perm button.deny");
  await page.waitForFunction(() => [...document.querySelectorAll('li.msg[data-role="tool"] .content')]
    .some((e) => e.textContent.includes("Permission denied: not from the console")));
  check("denied with a reason: the refusal is the tool's result", true);
  await waitText("#transcript", "finished after the denial");

  // ---------------------------------------------------------------- a rule remembered, then deleted
  await script([toolCall("bash", { command: "echo remembered-for-the-team" }), { kind: "text", text: "ok" }]);
  await send("and remember it");
  await page.waitForSelector("#conv-perms article.perm button.approve-team");
  await press("#conv-perms article.perm button.approve-team");
  await page.waitForFunction(() => [...document.querySelectorAll('li.msg[data-role="tool"] .content')]
    .some((e) => e.textContent.includes("remembered-for-the-team")));
  await go("#/permissions", "#rules tbody tr");
  check("approved for the team: a standing rule is listed",
    (await page.$eval("#rules tbody tr", (r) => r.children[0].textContent + " " + r.children[1].textContent)) === "bash allow");
  await press("#rules button.rule-delete");
  await page.waitForFunction(() => document.querySelectorAll("#rules tbody tr").length === 0);
  check("the rule is deleted", (await api("GET", "/api/permission-rules")).body.data.length === 0);

  // ---------------------------------------------------------------- worktrees
  await go("#/worktrees", "#wt-form");
  const before = requests.filter((r) => r.method === "POST" && r.url.endsWith("/api/worktrees")).length;
  await page.type("#wt-branch", "bad..name");
  await press("#wt-create");
  await waitText("#wt-error", "Invalid branch name");
  check("an invalid branch name is refused before any request",
    requests.filter((r) => r.method === "POST" && r.url.endsWith("/api/worktrees")).length === before);
  await page.$eval("#wt-branch", (e) => { e.value = ""; });
  await page.type("#wt-branch", "console/feature-1");
  await press("#wt-create");
  await page.waitForSelector('tr[data-branch="console/feature-1"]');
  check("a worktree is created and listed", true);
  await shots("worktrees");
  await press('tr[data-branch="console/feature-1"] button.wt-delete');
  await page.waitForFunction(() => !document.querySelector('tr[data-branch="console/feature-1"]'));
  check("the worktree is deleted", (await api("GET", "/api/worktrees")).body.data.length === 0);

  // ---------------------------------------------------------------- cluster
  await go("#/cluster", "#nodes");
  await page.waitForFunction(() => document.querySelectorAll('#nodes tr[data-state="alive"]').length === 2);
  check("cluster: two nodes alive with their ring share",
    (await page.$$eval("#nodes tbody tr", (l) => l.map((r) => r.children[3].textContent))).every((s) => s.endsWith("%")));
  const drains = await page.$$eval("#drain li", (l) => l.map((e) => e.textContent));
  check("cluster: the bickyctl drain command of each node", drains.join(",") === "bickyctl drain n1,bickyctl drain n2", drains);
  check("cluster: a team token gets no drain button", (await page.$$("#nodes button")).length === 0 &&
    await page.$eval("#node-actions-h", (e) => e.hidden));
  await shots("cluster");
  await go("#/conversations", "#conv-list tbody tr");
  await shots("conversations");

  // ---------------------------------------------------------------- the network cut
  const conv3 = (await api("POST", "/api/conversations", { title: "cut", strategy: "echo" })).body.id;
  await go("#/c/" + conv3, '#stream-state[data-state="live"]');
  const msg3 = "across the cut " + Array.from({ length: 40 }, (_, i) => "w" + i).join(" ");
  await send(msg3);
  await page.waitForFunction(() => {
    const e = document.querySelector('li.msg[data-role="assistant"][data-status="streaming"] .content');
    return e && e.textContent.length > 0;
  }, { polling: "mutation" });
  const pid = Number(fs.readFileSync(process.env.CONSOLE_GATEWAY_PID, "utf8").trim());
  process.kill(pid, "SIGTERM");
  out({ step: "gateway stopped", pid });
  await page.waitForSelector('#stream-state[data-state="reconnecting"]');
  check("the page shows the stream reconnecting", true);
  const reply3 = "echo: " + msg3;
  await page.waitForFunction((full) => {
    const e = document.querySelector('li.msg[data-role="assistant"][data-status="completed"] .content');
    return e && e.textContent === full;
  }, {}, reply3);
  await page.waitForSelector('#stream-state[data-state="live"]');
  await page.waitForSelector('#events li[data-type="turn.completed"]');
  const rows = await page.$$eval("#transcript li.msg", (l) => l.map((e) => e.dataset.role + ":" + e.dataset.id));
  check("after the cut: the message and the complete reply, each once", rows.length === 2 &&
    rows[0].startsWith("user:") && rows[1].startsWith("assistant:"), rows);
  const shownIds = await page.$$eval("#events li", (l) => l.map((e) => Number(e.dataset.eventId)));
  const storedIds = await until(async () => {
    const r = await api("GET", `/api/conversations/${conv3}/events?limit=500`);
    return r.status === 200 ? r.body.data.map((e) => e.id) : null;
  }, "the events after the restart");
  check("after the cut: every stored event shown once, in order",
    JSON.stringify(shownIds) === JSON.stringify(storedIds), { shown: shownIds, stored: storedIds });
  check("the gateway was restarted", Number(fs.readFileSync(process.env.CONSOLE_GATEWAY_PID, "utf8").trim()) !== pid);

  // ---------------------------------------------------------------- another team
  await press("#signout");
  await signIn(TOKEN2);
  await page.waitForSelector("#conv-empty:not([hidden])");
  check("another team: no conversation listed", (await page.$$("#conv-list tbody tr")).length === 0);
  await go("#/permissions", "#perm-none:not([hidden])");
  check("another team: no permission request", (await page.$$("article.perm")).length === 0);
  await go("#/worktrees", "#wt-none:not([hidden])");
  await go("#/c/" + conv1, "#not-found");
  check("another team: the first team's conversation is not found", true);
  await press("#signout");
  await signIn(TOKEN);

  // ---------------------------------------------------------------- XSS matrix
  const X = {
    title: `<img src=x onerror="window.__xss='title'">`,
    script: `<script>window.__xss='script'</script>`,
    link: `<a href="javascript:window.__xss='link'">click me</a>`,
    img: `<img src=x onerror="window.__xss='img'">`,
  };
  const xc = (await api("POST", "/api/conversations", { title: X.title, strategy: "echo" })).body.id;
  await api("POST", `/api/conversations/${xc}/messages`, { content: [X.script, X.link, X.img].join(" ") });
  const xt = (await api("POST", "/api/conversations", { title: X.script, strategy: "gpt" })).body.id;
  // Shell-quotable variants for the tool's output (no single quotes inside).
  const img2 = "<img src=x onerror=window.__xss=2>", link2 = "<a href=javascript:window.__xss=3>x</a>";
  await script([toolCall("bash", { command: `echo '${img2}' '${link2}'` }), { kind: "text", text: X.script },
                toolCall("bash", { command: X.script + X.link }), { kind: "text", text: "done" }]);
  await api("POST", `/api/conversations/${xt}/messages`, { content: X.link });
  const p1 = await until(async () => (await api("GET", `/api/permissions?status=pending&conversation_id=${xt}`)).body.data[0], "an XSS request");
  await api("POST", `/api/permissions/${p1.id}/approve`, {});
  await api("POST", `/api/conversations/${xt}/messages`, { content: "again" });
  await until(async () => {
    const l = (await api("GET", `/api/permissions?status=pending&conversation_id=${xt}`)).body.data;
    return l.length && l[0].id !== p1.id;
  }, "a second XSS request");
  async function clean(where, must) {
    const r = await page.evaluate((needles) => ({
      xss: window.__xss || null,
      els: document.querySelectorAll("#main img, #main script, #main iframe, #main object").length,
      js: document.querySelectorAll('[href^="javascript"], [src^="javascript"]').length,
      seen: needles.filter((n) => !document.querySelector("#main").textContent.includes(n)),
    }), must);
    check(`XSS ${where}: rendered as text, nothing ran`, !r.xss && r.els === 0 && r.js === 0 && r.seen.length === 0, r);
  }
  await go("#/conversations", `#conv-list tr[data-id="${xc}"]`);
  await clean("titles in the list", [X.title, X.script]);
  await go("#/c/" + xc, '#transcript li.msg[data-role="assistant"][data-status="completed"]');
  await clean("message content and title", [X.title, X.script, X.link, X.img]);
  await go("#/c/" + xt, "#conv-perms article.perm");
  await page.waitForFunction(() => [...document.querySelectorAll('li.msg[data-role="tool"]')].length > 0);
  await page.$$eval("#main details", (l) => l.forEach((d) => { d.open = true; }));
  await page.waitForFunction((w) => [...document.querySelectorAll('li.msg[data-role="tool"] .content')]
    .some((e) => e.textContent.includes(w)), {}, img2 + " " + link2);
  await clean("tool arguments and results", [X.script, img2, link2]);
  await go("#/permissions", "article.perm");
  await clean("a pending request's arguments", [X.script + X.link]);
  await press("article.perm button.deny");
  await page.waitForSelector("#perm-none:not([hidden])");

  // ---------------------------------------------------------------- paging and filters
  for (let i = 0; i < 21; i++) {
    await api("POST", "/api/conversations", { title: "paged " + i, source: "paging", strategy: "echo" });
  }
  await go("#/conversations", "#conv-list");
  await page.type("#f-source", "paging");
  await page.keyboard.press("Tab"); // a change event, as a reader leaving the field
  await page.waitForFunction(() => document.querySelectorAll("#conv-list tbody tr").length === 20 &&
    [...document.querySelectorAll("#conv-list tbody tr a")].every((a) => a.textContent.startsWith("paged ")));
  await press(".pager button:last-child");
  await page.waitForFunction(() => document.querySelectorAll("#conv-list tbody tr").length === 1);
  const last = await page.$eval("#conv-list tbody tr a", (a) => a.textContent);
  check("filtered by source and paged: 20, then the oldest one", last === "paged 0", last);
  await press(".pager button:first-child");
  await page.waitForFunction(() => document.querySelectorAll("#conv-list tbody tr").length === 20);
  await page.select("#f-status", "archived");
  await page.waitForSelector("#conv-empty:not([hidden])");
  check("filtered by status: no archived one among them", true);

  // ---------------------------------------------------------------- drain and undrain (admin token)
  // Last but one: n2 leaves the ring and comes back; nothing after this posts a turn.
  await press("#signout");
  await signIn(ADMIN);
  await go("#/cluster", '#nodes tr[data-node="n2"][data-state="alive"] button.drain');
  await page.waitForSelector('#nodes tr[data-node="n1"] button.drain');
  check("admin: a Drain button per node, the bickyctl commands hidden",
    (await page.$$("#nodes button.drain")).length === 2 && await page.$eval("#drain", (e) => e.hidden));
  // With the keyboard: Drain asks to confirm, and the confirmation takes the focus.
  await page.focus('#nodes tr[data-node="n2"] button.drain');
  await page.keyboard.press("Enter");
  await page.waitForSelector('#nodes tr[data-node="n2"] button.confirm-drain');
  check("admin: drain asks to confirm, with the focus on the confirmation",
    await page.evaluate(() => document.activeElement.classList.contains("confirm-drain")));
  await press('#nodes tr[data-node="n2"] button.cancel');
  await page.waitForSelector('#nodes tr[data-node="n2"] button.drain');
  check("admin: cancel leaves n2 alive", (await api("GET", "/api/status")).body.nodes
    .find((n) => n.id === "n2").state === "alive");
  await page.focus('#nodes tr[data-node="n2"] button.drain');
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement.classList.contains("confirm-drain"));
  await page.keyboard.press("Enter");
  await waitText("#toast", "Drain n2: draining");
  check("admin: the drain is confirmed in a toast", await page.$eval("#toast", (e) => e.dataset.kind === "ok"));
  await page.waitForSelector('#nodes tr[data-node="n2"][data-state="draining"] button.undrain');
  const st = (await api("GET", "/api/status")).body.nodes.find((n) => n.id === "n2");
  check("admin: n2 shows draining, off the ring", st.state === "draining" && !st.in_ring, st);
  check("admin: n2 has no ring share on the page",
    await page.$eval('#nodes tr[data-node="n2"]', (r) => r.children[3].textContent === "—"));
  await shots("cluster-admin");
  await press('#nodes tr[data-node="n2"] button.undrain');
  await page.waitForSelector('#nodes tr[data-node="n2"][data-state="alive"] button.drain');
  const back = (await api("GET", "/api/status")).body.nodes.find((n) => n.id === "n2");
  check("admin: n2 undrained, alive on the ring again", back.state === "alive" && back.in_ring, back);
  const noAdmin = await api("POST", "/api/nodes/n2/drain");
  check("a team token may not drain (403 forbidden)", noAdmin.status === 403 && noAdmin.body.code === "forbidden", noAdmin);
  await press("#signout");
  await signIn(TOKEN);

  // ---------------------------------------------------------------- keyboard, hosts, errors
  await go("#/conversations", "#conv-list");
  await page.focus("#main");
  const tabbed = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press("Tab");
    tabbed.push(await page.evaluate(() => document.activeElement.tagName + (document.activeElement.id ? "#" + document.activeElement.id : "")));
  }
  check("keyboard: Tab walks the controls", tabbed.some((t) => /^(INPUT|SELECT|BUTTON|A)/.test(t)), tabbed);
  const foreign = requests.filter((r) => !r.url.startsWith(ORIGIN + "/"));
  check("the console made no request to any host but the gateway", foreign.length === 0,
    { requests: requests.length, foreign: foreign.slice(0, 5) });
  check("no script error, CSP violation or dialog", problems.length === 0, problems.slice(0, 10));
  await browser.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}

main().then(
  () => { out({ done: true, failures }); process.exit(failures ? 1 : 0); },
  async (e) => {
    out({ check: "ran to the end", ok: false, detail: String((e && e.stack) || e) });
    if (page) await page.screenshot({ path: path.join(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
    process.exit(1);
  });
