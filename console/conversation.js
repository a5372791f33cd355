// conversation.js — #/c/<id>: one conversation. Its transcript is built from
// the conversation's event stream (replayed from the start, then live, and
// resumed with Last-Event-ID after a drop) plus the messages list for tool
// results; the assistant's reply grows token by token from message.delta.
// Compose and send, cancel a running turn, edit the title, archive, revert a
// reversible event, decide its pending permissions, its attached actors.
import {api, listAll, stream} from './api.js';
import {h, fill, time, json, statusBadge, toast} from './dom.js';
import {permissionCard} from './permissions.js';

const REFRESH_TYPES = /^(turn\.|conversation\.|event\.reverted|permission\.|tool\.completed)/;

export function conversationPage(root, id) {
  const msgs = new Map();    // message id → message
  const els = new Map();     // message id → its <li>
  const deltas = new Map();  // message id → text pieces by index
  const sources = new Map(); // message id → source of the event that stored it
  const events = new Map();  // event id → event
  let conv = null;
  let live = null;
  let gone = false;
  const timers = {};

  const title = h('h1#conv-title', {}, '…');
  const status = h('span#conv-status');
  const facts = h('dl.facts');
  const streamState = h('span#stream-state.muted', {'data-state': 'connecting'}, 'connecting…');
  const transcript = h('ol#transcript.transcript', {'aria-live': 'polite', 'aria-label': 'Transcript'});
  const pending = h('div#conv-perms');
  const eventList = h('ol#events.events');
  const actors = h('section#actors', {hidden: true, 'aria-labelledby': 'actors-h'});
  const titleInput = h('input#title-input', {type: 'text', maxlength: 1000, 'aria-label': 'Title'});
  const text = h('textarea#compose-text', {rows: 3, required: true, 'aria-label': 'Message',
    placeholder: 'Write a message (Ctrl+Enter sends)'});
  const sendBtn = h('button#send', {type: 'submit'}, 'Send');
  const cancelBtn = h('button#cancel', {type: 'button', onclick: cancel}, 'Cancel turn');
  const archiveBtn = h('button#archive.danger', {type: 'button', onclick: archive}, 'Archive');

  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); compose.requestSubmit(); }
  });
  const compose = h('form#compose.compose', {onsubmit: send}, text, sendBtn);
  const titleForm = h('form#title-form.inline', {onsubmit: saveTitle},
    titleInput, h('button#title-save', {type: 'submit'}, 'Save title'));

  fill(root,
    h('p', {}, h('a', {href: '#/conversations'}, '← Conversations')),
    h('header.conv-head', {}, title, status, streamState),
    h('div.actions', {}, titleForm, cancelBtn, archiveBtn),
    facts, pending, transcript, compose, actors,
    h('section.card', {'aria-labelledby': 'events-h'}, h('h2#events-h', {}, 'Events'), eventList));

  function showConv(c) {
    conv = c;
    fill(title, c.title || '(untitled)');
    fill(status, statusBadge(c.status));
    if (document.activeElement !== titleInput) titleInput.value = c.title || '';
    const running = ['processing', 'queued', 'waiting_for_permission'].includes(c.status);
    cancelBtn.disabled = !running;
    archiveBtn.disabled = c.status === 'archived';
    sendBtn.disabled = c.status === 'archived';
    fill(facts,
      h('dt', {}, 'Strategy'), h('dd', {}, c.strategy || ''),
      h('dt', {}, 'When busy'), h('dd', {}, c.on_busy || ''),
      h('dt', {}, 'Worktree'), h('dd', {}, c.worktree_id || 'none'),
      h('dt', {}, 'Source'), h('dd', {}, c.source || ''),
      h('dt', {}, 'Created'), h('dd', {}, time(c.created_at)),
      h('dt', {}, 'Updated'), h('dd', {}, time(c.updated_at)));
  }

  function later(key, fn, ms) {
    clearTimeout(timers[key]);
    timers[key] = setTimeout(fn, ms || 100);
  }

  async function refreshConv() {
    try { showConv(await api('GET', '/api/conversations/' + id)); } catch (e) { /* kept */ }
  }
  async function refreshMessages() {
    try { for (const m of await listAll('/api/conversations/' + id + '/messages')) upsert(m); } catch (e) { /* kept */ }
  }
  async function refreshPending() {
    try {
      const list = await api('GET', '/api/permissions?status=pending&conversation_id=' + id);
      fill(pending, (list.data || []).map((r) => permissionCard(r, () => { refreshPending(); })));
    } catch (e) { /* kept */ }
  }

  // ---- the transcript

  function upsert(m) {
    const old = msgs.get(m.id);
    if (old && old.status === 'completed' && m.status !== 'completed') return;
    // Unchanged: left as it is (keeps the reader's focus and open folds).
    if (old && els.has(m.id) && old.status === m.status && old.content === m.content &&
        old.updated_at === m.updated_at && !deltas.has(m.id) &&
        (!sources.has(m.id) || els.get(m.id).querySelector('.meta .source'))) return;
    msgs.set(m.id, m);
    if (m.status !== 'streaming' && m.status !== 'pending') deltas.delete(m.id);
    render(m);
  }

  function content(m) {
    const parts = deltas.get(m.id);
    if (parts && (m.status === 'streaming' || m.status === 'pending')) return parts.join('');
    return m.content || '';
  }

  function render(m) {
    let el = els.get(m.id);
    const meta = m.metadata || {};
    const src = sources.get(m.id);
    const body = m.role === 'tool'
      ? h('details.fold.tool-result', {},
          h('summary', {}, 'tool result: ' + (meta.tool_name || '') + (meta.is_error ? ' (error)' : '')),
          h('pre.content', {}, content(m)))
      : h('div.content', {}, content(m));
    const calls = Array.isArray(meta.tool_calls) ? meta.tool_calls : [];
    const node = h('li.msg', {'data-id': m.id, 'data-role': m.role, 'data-status': m.status, 'data-seq': m.seq},
      h('div.meta', {}, h('span.role', {}, m.role), ' ',
        src ? h('span.source', {}, src.kind + ':' + src.id) : null, ' ',
        m.status !== 'completed' ? h('span.mstatus', {}, m.status) : null, ' ', time(m.created_at)),
      body,
      calls.map((c) => h('details.fold.tool-call', {},
        h('summary', {}, 'tool call: ' + ((c.function && c.function.name) || c.name || '')),
        json((c.function && c.function.arguments) || c.arguments || c.input || c))));
    if (el) {
      // Keep folds the reader opened.
      const open = [...el.querySelectorAll('details')].map((d) => d.open);
      [...node.querySelectorAll('details')].forEach((d, i) => { d.open = !!open[i]; });
      el.replaceWith(node);
    } else {
      transcript.appendChild(node);
    }
    els.set(m.id, node);
    order();
  }

  function order() {
    const sorted = [...msgs.values()].sort((a, b) => (a.seq || 1e15) - (b.seq || 1e15));
    const kids = transcript.children;
    sorted.forEach((m, i) => {
      const el = els.get(m.id);
      if (kids[i] !== el) transcript.insertBefore(el, kids[i] || null);
    });
    const end = transcript.lastElementChild;
    if (end && nearBottom) end.scrollIntoView({block: 'nearest'});
  }
  let nearBottom = true;
  const onScroll = () => {
    nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  };
  window.addEventListener('scroll', onScroll, {passive: true});

  function delta(d) {
    const mid = d.message_id;
    if (!mid) return;
    const m = msgs.get(mid) || {id: mid, conversation_id: id, role: 'assistant', status: 'streaming',
                                content: '', seq: null, metadata: {}};
    if (m.status === 'completed') return;
    const parts = deltas.get(mid) || [];
    parts[Number.isInteger(d.index) ? d.index : parts.length] = d.text || '';
    deltas.set(mid, parts);
    if (m.status === 'pending') m.status = 'streaming';
    msgs.set(mid, m);
    render(m);
  }

  // ---- the event log

  function eventRow(ev) {
    const src = ev.source || {};
    const rev = ev.reversible && !ev.reverted_by
      ? h('button.revert', {type: 'button', onclick: () => revert(ev.id)}, 'Revert') : null;
    const a = ev.action || {};
    let what = '';
    if (ev.type === 'conversation.updated' && a.changes) what = summary(a.changes);
    else if (ev.type === 'event.reverted') what = 'reverts #' + a.reverts;
    else if (ev.type.startsWith('tool.')) what = a.tool_name || '';
    else if (ev.type.startsWith('permission.') && a.request) what = a.request.tool_name + ' ' + (a.request.status || '');
    return h('li', {'data-event-id': ev.id, 'data-type': ev.type, 'data-reverted': ev.reverted_by ? 'yes' : 'no'},
      h('span.eid', {}, '#' + ev.id), ' ', h('span.etype', {}, ev.type), ' ',
      h('span.source', {title: 'source'}, (src.kind || '?') + ':' + (src.id || '')), ' ',
      what ? h('span.what', {}, what) : null, ' ', time(ev.created_at), ' ',
      ev.reverted_by ? h('span.muted', {}, 'reverted by #' + ev.reverted_by) : null, rev);
  }

  function summary(changes) {
    return Object.entries(changes).map(([k, v]) => k + ' → ' + (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
  }

  function addEvent(ev) {
    if (events.has(ev.id)) return;
    events.set(ev.id, ev);
    eventList.appendChild(eventRow(ev));
    if (ev.type === 'event.reverted' && ev.action && events.has(ev.action.reverts)) {
      const orig = events.get(ev.action.reverts);
      orig.reverted_by = ev.id;
      const old = eventList.querySelector('[data-event-id="' + orig.id + '"]');
      if (old) old.replaceWith(eventRow(orig));
    }
  }

  function onEvent(ev) {
    const a = ev.data;
    if (ev.type === 'message.delta') { delta(a); return; }
    if (ev.id === null) return;
    addEvent(a);
    const act = a.action || {};
    if (act.message && act.message.id) {
      sources.set(act.message.id, a.source || {});
      upsert(act.message);
    }
    if (ev.type === 'tool.completed' || ev.type === 'permission.decided' || ev.type.startsWith('turn.')) {
      later('msgs', refreshMessages, 50);
    }
    if (ev.type.startsWith('permission.')) later('perms', refreshPending, 50);
    if (REFRESH_TYPES.test(ev.type)) later('conv', refreshConv, 50);
    if (ev.type === 'actor.attached' || ev.type === 'actor.detached' || ev.type === 'conversation.updated') later('actors', loadActors, 50);
  }

  // ---- actions

  async function send(e) {
    e.preventDefault();
    const t = text.value;
    if (!t.trim()) return;
    sendBtn.disabled = true;
    try {
      const r = await api('POST', '/api/conversations/' + id + '/messages', {content: t});
      text.value = '';
      if (r && r.message) upsert(r.message);
      later('conv', refreshConv, 50);
    } catch (ex) { toast('Send: ' + ex.message); }
    sendBtn.disabled = conv && conv.status === 'archived';
    text.focus();
  }
  async function cancel() {
    try { await api('POST', '/api/conversations/' + id + '/cancel', {}); toast('Cancelled.', 'ok'); } catch (ex) { toast('Cancel: ' + ex.message); }
    refreshConv();
  }
  async function archive() {
    try { await api('DELETE', '/api/conversations/' + id); toast('Archived (revert it in the events below).', 'ok'); } catch (ex) { toast('Archive: ' + ex.message); }
    refreshConv();
  }
  async function saveTitle(e) {
    e.preventDefault();
    try { showConv(await api('PATCH', '/api/conversations/' + id, {title: titleInput.value})); } catch (ex) { toast('Title: ' + ex.message); }
  }
  async function revert(eid) {
    try { await api('POST', '/api/events/' + eid + '/revert', {}); refreshConv(); } catch (ex) { toast('Revert: ' + ex.message); }
  }

  function triggerText(t) {
    if (!t) return '';
    if (t.type === 'every_n_turns') return 'every ' + t.n + ' turns';
    if (t.type === 'on_event_types') return 'on ' + t.types;
    return t.type === 'after_turn' ? 'after each turn' : String(t.type);
  }
  async function loadActors() {
    // The responder (the conversation's strategy), then the observers.
    try {
      const r = await api('GET', '/api/conversations/' + id + '/actors');
      const list = (r && r.data) || [];
      fill(actors, h('h2#actors-h', {}, 'Attached actors'),
        h('ul', {}, list.map((a) => h('li', {'data-actor': a.name},
          a.name + ' (' + a.kind + ') — ' + a.strategy + (a.trigger ? ', ' + triggerText(a.trigger) : '')))));
      actors.hidden = false;
    } catch (e) { actors.hidden = true; }
  }

  (async () => {
    try {
      showConv(await api('GET', '/api/conversations/' + id));
    } catch (e) {
      if (gone) return;
      fill(root, h('p', {}, h('a', {href: '#/conversations'}, '← Conversations')),
        h('h1', {}, 'Not found'), h('p#not-found', {}, 'There is no such conversation for this team.'));
      return;
    }
    if (gone) return;
    refreshMessages();
    refreshPending();
    loadActors();
    live = stream('/api/conversations/' + id + '/events', {
      after: 0,
      onEvent,
      onState: (s) => {
        streamState.dataset.state = s;
        streamState.textContent = s === 'live' ? 'live' : s === 'reconnecting' ? 'reconnecting…' : s;
        if (s === 'live') { refreshConv(); refreshMessages(); }
      },
    });
  })();

  return {destroy() {
    gone = true;
    if (live) live.close();
    window.removeEventListener('scroll', onScroll);
    for (const t of Object.values(timers)) clearTimeout(t);
  }};
}
