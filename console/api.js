// api.js — the gateway's HTTP API (docs/api.md) as the console uses it. The
// team token lives in sessionStorage only and travels in the Authorization
// header, never in a URL. Streams are read with fetch() (EventSource cannot
// send a header) and resume with Last-Event-ID after any drop.

const KEY = 'bicky.token';
const SILENCE_MS = 35000; // a stream with no byte for this long is dead

export function token() { return sessionStorage.getItem(KEY) || ''; }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function clearToken() { sessionStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || ('HTTP ' + status));
    this.status = status;
    this.code = (body && body.code) || '';
    this.field = (body && body.field) || '';
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// api(method, path, body?, headers?) → the parsed JSON body (null for 204).
// Throws ApiError for any answer that is not 2xx (a 401 also signs out).
export async function api(method, path, body, headers) {
  const h = {Authorization: 'Bearer ' + token(), Accept: 'application/json'};
  const init = {method, headers: Object.assign(h, headers || {}), cache: 'no-store'};
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, {error: 'the gateway cannot be reached', code: 'network'});
  }
  const text = await resp.text().catch(() => '');
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (resp.status === 401) onUnauthorized();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// Every page of a list route (follows next_cursor), up to max items.
export async function listAll(path, max = 2000) {
  const out = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', path + sep + 'limit=500' +
                           (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    out.push(...(page.data || []));
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

// Opens an SSE stream (path: /api/stream or /api/conversations/:id/events)
// and keeps it open: after a drop it reconnects with Last-Event-ID = the last
// stored event it delivered, so every stored event arrives once, in order.
// opts: after (start after this event id; absent: live events only), onEvent({id, type, data}),
// onState('live' | 'reconnecting' | 'closed', detail). Returns {close()}.
export function stream(path, opts) {
  let lastId = opts.after ?? null; // null: live only until the first stored event
  let closed = false;
  let ctrl = null;
  let delay = 500;
  let buf = ''; // text of the current connection not yet split into blocks
  const state = (s, d) => opts.onState && opts.onState(s, d);

  async function once() {
    ctrl = new AbortController();
    const headers = {Authorization: 'Bearer ' + token(), Accept: 'text/event-stream'};
    if (lastId !== null) headers['Last-Event-ID'] = String(lastId);
    const resp = await fetch(path, {headers, signal: ctrl.signal, cache: 'no-store'});
    if (resp.status === 401) { onUnauthorized(); closed = true; return; }
    if (resp.status === 404) { closed = true; state('closed', 'not found'); return; }
    if (!resp.ok || !resp.body) throw new Error('HTTP ' + resp.status);
    state('live');
    delay = 500;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    buf = '';
    // The gateway sends a keep-alive comment at least every 15 s: a stream
    // silent for much longer went away without a close (a dead network
    // path), so it is dropped and resumed.
    let heard = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - heard > SILENCE_MS) ctrl.abort();
    }, 5000);
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) return;
        heard = Date.now();
        take(value);
      }
    } finally {
      clearInterval(watchdog);
    }
  }

  // Splits what arrived into SSE blocks (a blank line ends one).
  function take(value) {
    buf += value.replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      dispatch(block);
    }
  }

  function dispatch(block) {
    let id = null, type = 'message', data = '';
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'id') id = Number(value);
      else if (field === 'event') type = value;
      else if (field === 'data') data += (data ? '\n' : '') + value;
    }
    if (!data) return;
    if (type === 'error') throw new Error('stream error: ' + data);
    if (id !== null) {
      if (lastId !== null && id <= lastId) return; // already delivered: never twice
      lastId = id;
    }
    let parsed;
    try { parsed = JSON.parse(data); } catch (e) { return; }
    try { opts.onEvent({id, type, data: parsed}); } catch (e) { console.error(e); }
  }

  (async () => {
    while (!closed) {
      try {
        await once();
      } catch (e) {
        if (closed) break;
      }
      if (closed) break;
      state('reconnecting', lastId);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 4000);
    }
  })();

  return {
    close() { closed = true; if (ctrl) ctrl.abort(); },
    get lastId() { return lastId; },
  };
}
