// permissions.js — #/permissions: the team's pending permission requests,
// live from the team stream, each with its tool, its full arguments and its
// conversation; approve once, for the conversation or for the team, or deny
// with a reason. Below, the standing rules, each deletable.
import {api, listAll} from './api.js';
import {h, fill, time, json, toast} from './dom.js';
import {onTeamEvent} from './app.js';

// One pending request with its decision controls; done() runs after a decision.
export function permissionCard(r, done) {
  const reason = h('input.reason', {type: 'text', maxlength: 1000, placeholder: 'reason (optional)',
                                    'aria-label': 'Reason for denying ' + r.tool_name});
  const buttons = [];
  async function decide(path, body) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api('POST', '/api/permissions/' + r.id + '/' + path, body);
      card.dataset.decided = path;
      done && done();
    } catch (ex) {
      toast('Decision: ' + ex.message);
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
  const b = (cls, label, fn) => { const x = h('button.' + cls, {type: 'button', onclick: fn}, label); buttons.push(x); return x; };
  const card = h('article.card.perm', {'data-id': r.id, 'data-tool': r.tool_name},
    h('h3', {}, h('span.tool', {}, r.tool_name), ' ', h('span.muted', {}, 'asks to run')),
    r.description ? h('p.desc', {}, r.description) : null,
    h('div.args-label.muted', {}, 'Arguments'), json(r.arguments),
    h('p.muted', {}, 'Conversation ', h('a.perm-conv', {href: '#/c/' + r.conversation_id}, r.conversation_id),
      ' · asked ', time(r.created_at), r.expires_at ? [' · expires ', time(r.expires_at)] : null),
    h('div.actions', {},
      b('approve', 'Approve once', () => decide('approve', {})),
      b('approve-conv', 'Approve for this conversation', () => decide('approve', {remember: 'conversation'})),
      b('approve-team', 'Approve for the team', () => decide('approve', {remember: 'team'})),
      reason,
      b('deny.danger', 'Deny', () => decide('deny', reason.value.trim() ? {reason: reason.value.trim()} : {}))));
  return card;
}

export function permissionsPage(root) {
  const list = h('div#perm-list');
  const none = h('p.muted#perm-none', {hidden: true}, 'No pending request.');
  const rules = h('tbody');
  let timer = null;

  async function load() {
    try {
      const reqs = await listAll('/api/permissions?status=pending', 1000);
      fill(list, reqs.map((r) => permissionCard(r, load)));
      none.hidden = reqs.length > 0;
    } catch (e) { toast('Permissions: ' + e.message); }
    try {
      const rs = await listAll('/api/permission-rules', 1000);
      fill(rules, rs.map((r) => h('tr', {'data-id': r.id},
        h('td', {}, r.tool_pattern), h('td', {}, r.decision),
        h('td', {}, r.scope === 'conversation'
          ? h('a', {href: '#/c/' + r.conversation_id}, 'conversation') : 'team'),
        h('td', {}, time(r.created_at)),
        h('td', {}, h('button.danger.rule-delete', {type: 'button', onclick: async () => {
          try { await api('DELETE', '/api/permission-rules/' + r.id); load(); } catch (ex) { toast('Delete rule: ' + ex.message); }
        }}, 'Delete')))));
    } catch (e) { toast('Rules: ' + e.message); }
  }

  const off = onTeamEvent((ev) => {
    if (ev.type.startsWith('permission.') || ev.type === 'stream.live') {
      clearTimeout(timer);
      timer = setTimeout(load, 100);
    }
  });

  fill(root,
    h('section', {'aria-labelledby': 'perm-h'}, h('h1#perm-h', {}, 'Pending permissions'), none, list),
    h('section', {'aria-labelledby': 'rules-h'}, h('h2#rules-h', {}, 'Standing rules'),
      h('div.scroll', {}, h('table.list#rules', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Tool'), h('th', {}, 'Decision'), h('th', {}, 'Scope'),
          h('th', {}, 'Created'), h('th', {}, ''))), rules))));
  load();
  return {destroy() { off(); clearTimeout(timer); }};
}
