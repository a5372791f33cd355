// conversations.js — #/conversations: the team's conversations, a page at a
// time, filtered by status, source and type, their status kept live from the
// team stream; and the form that starts a new one.
import {api, listAll} from './api.js';
import {h, fill, time, statusBadge, toast} from './dom.js';
import {onTeamEvent} from './app.js';

const STATUSES = ['', 'idle', 'queued', 'processing', 'waiting_for_permission', 'error', 'archived'];
const PAGE = 20;

export function conversationsPage(root) {
  const q = {status: '', source: '', type: ''};
  let cursors = [null]; // cursor of each page seen; the last is the current page's
  let rows = new Map(); // conversation id → its <tr>
  let reloadTimer = null;

  const tbody = h('tbody');
  const empty = h('p.muted#conv-empty', {hidden: true}, 'No conversation matches.');
  const prev = h('button', {type: 'button', onclick: () => { cursors.pop(); load(); }}, 'Previous');
  const next = h('button', {type: 'button'}, 'Next');
  const pageNo = h('span.muted');

  function filterSelect() {
    return h('select#f-status', {onchange: (e) => { q.status = e.target.value; cursors = [null]; load(); }},
      STATUSES.map((s) => h('option', {value: s}, s ? s.replace(/_/g, ' ') : 'any')));
  }
  function filterText(id, key, label) {
    const input = h('input#' + id, {type: 'search', placeholder: label, maxlength: 64});
    input.addEventListener('change', () => { q[key] = input.value.trim(); cursors = [null]; load(); });
    return [h('label', {for: id}, label), input];
  }

  function row(c) {
    return h('tr', {'data-id': c.id},
      h('td', {}, h('a.conv-link', {href: '#/c/' + c.id}, c.title || '(untitled)')),
      h('td', {}, statusBadge(c.status)),
      h('td.hide-narrow', {}, c.strategy || ''),
      h('td.hide-narrow', {}, c.source || ''),
      h('td', {}, time(c.created_at)),
      h('td', {}, time(c.updated_at)));
  }

  async function load() {
    const params = new URLSearchParams({limit: String(PAGE)});
    for (const k of ['status', 'source', 'type']) if (q[k]) params.set(k, q[k]);
    const cur = cursors[cursors.length - 1];
    if (cur) params.set('cursor', cur);
    try {
      const page = await api('GET', '/api/conversations?' + params);
      rows = new Map();
      fill(tbody, (page.data || []).map((c) => { const r = row(c); rows.set(c.id, r); return r; }));
      empty.hidden = (page.data || []).length > 0;
      prev.disabled = cursors.length <= 1;
      next.disabled = !page.next_cursor;
      next.onclick = () => { cursors.push(page.next_cursor); load(); };
      pageNo.textContent = 'page ' + cursors.length;
    } catch (e) { toast('Conversations: ' + e.message); }
  }

  // A conversation's row follows its status live; a new one reloads page 1.
  const pendingRows = new Set(); // conversations whose row is being refreshed
  const off = onTeamEvent((ev) => {
    if (ev.type === 'message.delta') return; // text only: the status is unchanged
    const cid = ev.data && ev.data.conversation_id;
    if (ev.type === 'stream.live' || (ev.type === 'conversation.created' && cursors.length === 1)) {
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(load, 150);
    } else if (cid && rows.has(cid) && !pendingRows.has(cid)) {
      pendingRows.add(cid);
      // One read per burst of events of a conversation.
      setTimeout(() => api('GET', '/api/conversations/' + cid).then((c) => {
        const old = rows.get(cid);
        if (!old || !old.isConnected) return;
        const r = row(c);
        rows.set(cid, r);
        old.replaceWith(r);
      }).catch(() => {}).finally(() => pendingRows.delete(cid)), 150);
    }
  });

  fill(root,
    h('section', {'aria-labelledby': 'conv-h'},
      h('h1#conv-h', {}, 'Conversations'),
      newForm(),
      h('div.filters', {role: 'search'},
        h('label', {for: 'f-status'}, 'Status'), filterSelect(),
        filterText('f-source', 'source', 'Source'), filterText('f-type', 'type', 'Type')),
      h('div.scroll', {}, h('table.list#conv-list', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Title'), h('th', {}, 'Status'),
          h('th.hide-narrow', {}, 'Strategy'), h('th.hide-narrow', {}, 'Source'),
          h('th', {}, 'Created'), h('th', {}, 'Updated'))),
        tbody)),
      empty,
      h('div.pager', {}, prev, pageNo, next)));
  load();
  return {destroy() { off(); clearTimeout(reloadTimer); }};
}

// The "new conversation" form: title, strategy, worktree, on_busy.
function newForm() {
  const strategy = h('select#n-strategy', {}, h('option', {value: ''}, 'default'));
  const worktree = h('select#n-worktree', {}, h('option', {value: ''}, 'none'));
  const title = h('input#n-title', {type: 'text', maxlength: 1000, placeholder: 'optional'});
  const onBusy = h('select#n-onbusy', {},
    ['enqueue', 'reject', 'interrupt'].map((v) => h('option', {value: v}, v)));
  api('GET', '/api/strategies').then((r) => {
    for (const s of r.data || []) {
      strategy.appendChild(h('option', {value: s.name}, s.name + (s.model ? ' (' + s.model + ')' : '')));
    }
  }).catch(() => {});
  listAll('/api/worktrees', 500).then((list) => {
    for (const w of list) worktree.appendChild(h('option', {value: w.id}, w.branch));
  }).catch(() => {});
  const form = h('form.card.inline#new-conv', {onsubmit: async (e) => {
    e.preventDefault();
    const body = {source: 'web', on_busy: onBusy.value};
    if (title.value.trim()) body.title = title.value.trim();
    if (strategy.value) body.strategy = strategy.value;
    if (worktree.value) body.worktree_id = worktree.value;
    try {
      const c = await api('POST', '/api/conversations', body);
      location.hash = '#/c/' + c.id;
    } catch (ex) { toast('New conversation: ' + ex.message); }
  }},
    h('h2', {}, 'New conversation'),
    h('div.fields', {},
      h('label', {for: 'n-title'}, 'Title'), title,
      h('label', {for: 'n-strategy'}, 'Strategy'), strategy,
      h('label', {for: 'n-worktree'}, 'Worktree'), worktree,
      h('label', {for: 'n-onbusy'}, 'When busy'), onBusy),
    h('button#n-create', {type: 'submit'}, 'Create'));
  return form;
}
