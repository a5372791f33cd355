// dom.js — building elements safely. Untrusted text only ever goes in as
// text nodes (textContent), never as HTML; attributes are set one by one and
// no attribute that can hold a URL or a handler is ever given data.

// h('div.cls#id', {attr: v, onclick: fn}, child, ...): an element. Children
// are elements, strings (text nodes) or arrays of them; null is skipped.
export function h(tag, props, ...children) {
  const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/.exec(tag);
  if (!m) throw new Error('bad tag ' + tag);
  const el = document.createElement(m[1]);
  for (const part of m[2].match(/[.#][\w-]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'open') el[k] = !!v;
    else if (k === 'href') el.setAttribute('href', safeHref(v));
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Only our own in-page routes are ever linked.
function safeHref(v) {
  const s = String(v);
  return s.startsWith('#/') ? s : '#/';
}

// Replaces the children of el.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A time as the reader's local date and time; the raw value in the tooltip.
export function time(iso) {
  if (!iso) return h('span.muted', {}, '—');
  const d = new Date(iso);
  const text = isNaN(d) ? String(iso) : d.toLocaleString();
  return h('time', {datetime: String(iso), title: String(iso)}, text);
}

// A JSON value pretty-printed in full (never cut), as text.
export function json(v) {
  let s;
  try { s = JSON.stringify(v, null, 2); } catch (e) { s = String(v); }
  return h('pre.json', {}, s === undefined ? 'null' : s);
}

export function statusBadge(status) {
  const label = {processing: 'running', queued: 'queued',
                 waiting_for_permission: 'waiting for permission'}[status] || status || '?';
  return h('span.status', {'data-status': status || ''}, label);
}

let toastTimer = null;
// A short message in the corner (errors, confirmations).
export function toast(text, kind) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.dataset.kind = kind || 'error';
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

// Git's rules for a branch name (git check-ref-format --branch), as the
// gateway applies them; returns the reason a name is refused, or ''.
export function branchProblem(name) {
  if (!name) return 'a branch name is required';
  if (name.length > 200) return 'at most 200 characters';
  if (/[\x00-\x20\x7f~^:?*\[\\]/.test(name)) return 'no spaces, control characters or any of ~ ^ : ? * [ \\';
  if (name.startsWith('-')) return 'cannot start with -';
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) return 'no empty path component';
  if (name.includes('..')) return 'cannot contain ..';
  if (name.includes('@{') || name === '@') return 'cannot contain @{ or be @';
  if (name.endsWith('.') || name.endsWith('.lock')) return 'cannot end with . or .lock';
  if (name.split('/').some((c) => c.startsWith('.') || c.endsWith('.lock'))) {
    return 'no component may start with . or end with .lock';
  }
  return '';
}
