// cluster.js — #/cluster: the nodes with their state, actors and share of
// the ring, the ring epoch and the registry, refreshed every 2 s while shown.
// With an admin token (/api/status says "admin": true) each node gets a
// Drain or Undrain button (drain asks to confirm first); the gateway forwards
// the request with the token and the registry checks it (docs/api.md, Nodes).
// Any other token sees the bickyctl command for each node instead. Rows are
// updated in place, so the 2 s refresh never takes the keyboard focus away.
import {api} from './api.js';
import {h, fill, toast} from './dom.js';

export function clusterPage(root) {
  const summary = h('dl.facts#cluster-facts');
  const tbody = h('tbody');
  const actHead = h('th#node-actions-h', {hidden: true}, 'Action');
  const counts = h('dl.facts#conv-counts');
  const drain = h('ul#drain.commands');
  const drainHelp = h('p.muted#drain-help');
  const rows = new Map(); // node id → {tr, state, actors, share, act, key}
  const busy = new Set(); // node ids with a drain/undrain request in flight
  let confirming = null; // node id whose drain waits for a confirmation
  let admin = false;
  let last = []; // the nodes of the last status
  let total = 0; // ring weight of the last status
  let timer = null;
  let gone = false;

  // The buttons of a node's action cell; focus names the one to focus after.
  function actions(n) {
    if (busy.has(n.id)) {
      return h('button', {type: 'button', disabled: true}, n.state === 'draining' ? 'Undraining…' : 'Draining…');
    }
    if (n.state === 'draining') {
      return h('button.undrain', {type: 'button', 'aria-label': 'Undrain ' + n.id,
        onclick: () => act(n.id, 'undrain')}, 'Undrain');
    }
    if (confirming === n.id) {
      return h('span.actions', {},
        h('span', {}, 'Drain ' + n.id + '? Its conversations move to the other nodes.'),
        h('button.danger.confirm-drain', {type: 'button', onclick: () => act(n.id, 'drain')}, 'Confirm drain'),
        h('button.cancel', {type: 'button', onclick: () => { confirming = null; render(); focusIn(n.id, 'button.drain'); }}, 'Cancel'));
    }
    return h('button.drain', {type: 'button', 'aria-label': 'Drain ' + n.id,
      onclick: () => { confirming = n.id; render(); focusIn(n.id, 'button.confirm-drain'); }}, 'Drain');
  }

  function focusIn(id, sel) {
    const r = rows.get(id);
    const el = r && r.act.querySelector(sel);
    if (el) el.focus();
  }

  async function act(id, action) {
    confirming = null;
    busy.add(id);
    render();
    try {
      const r = await api('POST', '/api/nodes/' + encodeURIComponent(id) + '/' + action);
      toast(action[0].toUpperCase() + action.slice(1) + ' ' + id + ': ' + (r && r.state ? r.state : 'done') +
        ' (ring epoch ' + (r ? r.ring_epoch : '?') + ')', 'ok');
    } catch (e) {
      toast(action[0].toUpperCase() + action.slice(1) + ' ' + id + ': ' + e.message);
    }
    busy.delete(id);
    if (gone) return;
    clearTimeout(timer);
    await load();
    focusIn(id, 'button'); // the keyboard stays on the node acted on
  }

  function row(n) {
    let r = rows.get(n.id);
    if (!r) {
      r = {state: h('td'), actors: h('td'), share: h('td'), act: h('td.node-actions'), key: null};
      r.tr = h('tr', {'data-node': n.id}, h('td', {}, n.id), r.state, r.actors, r.share, r.act);
      rows.set(n.id, r);
    }
    r.tr.dataset.state = n.state;
    if (r.state.textContent !== n.state) fill(r.state, h('span.status', {'data-status': n.state}, n.state));
    r.actors.textContent = String(n.actors ?? '');
    r.share.textContent = n.in_ring && total ? (100 * n.weight / total).toFixed(1) + ' %' : '—';
    r.act.hidden = !admin;
    const key = [admin, n.state, confirming === n.id, busy.has(n.id)].join('|');
    if (admin && key !== r.key) fill(r.act, actions(n));
    if (!admin) r.act.replaceChildren();
    r.key = key;
    return r.tr;
  }

  // Updates the table in place: rows are kept (and so is the focus in them).
  function render() {
    const want = last.map(row);
    const ids = new Set(last.map((n) => n.id));
    for (const [id, r] of rows) {
      if (!ids.has(id)) { r.tr.remove(); rows.delete(id); }
    }
    const same = want.length === tbody.children.length && want.every((tr, i) => tbody.children[i] === tr);
    if (!same) fill(tbody, want);
    actHead.hidden = !admin;
    drain.hidden = admin;
    drainHelp.textContent = admin
      ? 'Your token is an admin token: drain takes a node off the ring (its conversations move to the ' +
        'other nodes), undrain puts it back. The state above follows within 2 s.'
      : 'Draining needs an admin token or the cluster\'s admin key: run the command with bickyctl ' +
        '(BICKY_ADMIN_CERT set); the state above follows within 2 s.';
  }

  async function load() {
    try {
      const s = await api('GET', '/api/status');
      last = s.nodes || [];
      admin = s.admin === true;
      total = last.filter((n) => n.in_ring).reduce((t, n) => t + (n.weight || 0), 0);
      if (confirming && !last.some((n) => n.id === confirming && n.state !== 'draining')) confirming = null;
      const g = s.gateway || {};
      fill(summary,
        h('dt', {}, 'Ring epoch'), h('dd#ring-epoch', {}, String(s.ring_epoch)),
        h('dt', {}, 'Live nodes'), h('dd#live-nodes', {}, String(s.live_nodes)),
        h('dt', {}, 'Actors'), h('dd', {}, String(s.actors ?? '')),
        h('dt', {}, 'Registry'), h('dd#registry', {}, g.registry ? String(g.registry) : 'unknown'),
        h('dt', {}, 'Gateway'), h('dd', {}, 'version ' + (g.version || '?') + ', up ' + (g.uptime_s ?? '?') + ' s, ' +
          (g.connections ?? '?') + ' connections, ' + (g.sse_clients ?? '?') + ' streams'));
      render();
      fill(drain, last.map((n) => h('li', {}, h('code', {},
        (n.state === 'draining' ? 'bickyctl undrain ' : 'bickyctl drain ') + n.id))));
      const by = s.conversations_by_status || {};
      fill(counts, Object.entries(by).map(([k, v]) => [h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, String(v))]));
    } catch (e) { if (!gone) toast('Status: ' + e.message); }
    if (!gone) { clearTimeout(timer); timer = setTimeout(load, 2000); }
  }

  fill(root,
    h('section', {'aria-labelledby': 'cl-h'}, h('h1#cl-h', {}, 'Cluster'), summary,
      h('div.scroll', {}, h('table.list#nodes', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', {}, 'State'), h('th', {}, 'Actors'),
          h('th', {}, 'Ring share'), actHead)), tbody)),
      h('h2', {}, 'Drain or undrain a node'),
      drainHelp,
      drain,
      h('h2', {}, 'Conversations by status'), counts));
  load();
  return {destroy() { gone = true; clearTimeout(timer); }};
}
