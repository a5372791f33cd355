// cluster.js — #/cluster: the nodes with their state, actors and share of
// the ring, the ring epoch and the registry, refreshed every 2 s while shown.
// Draining is an admin act done with bickyctl (the registry's admin key, not
// a team token): the page shows the command for each node.
import {api} from './api.js';
import {h, fill, toast} from './dom.js';

export function clusterPage(root) {
  const summary = h('dl.facts#cluster-facts');
  const tbody = h('tbody');
  const counts = h('dl.facts#conv-counts');
  const drain = h('ul#drain.commands');
  let timer = null;
  let gone = false;

  async function load() {
    try {
      const s = await api('GET', '/api/status');
      const nodes = s.nodes || [];
      const total = nodes.filter((n) => n.in_ring).reduce((t, n) => t + (n.weight || 0), 0);
      const g = s.gateway || {};
      fill(summary,
        h('dt', {}, 'Ring epoch'), h('dd#ring-epoch', {}, String(s.ring_epoch)),
        h('dt', {}, 'Live nodes'), h('dd#live-nodes', {}, String(s.live_nodes)),
        h('dt', {}, 'Actors'), h('dd', {}, String(s.actors ?? '')),
        h('dt', {}, 'Registry'), h('dd#registry', {}, g.registry ? String(g.registry) : 'unknown'),
        h('dt', {}, 'Gateway'), h('dd', {}, 'version ' + (g.version || '?') + ', up ' + (g.uptime_s ?? '?') + ' s, ' +
          (g.connections ?? '?') + ' connections, ' + (g.sse_clients ?? '?') + ' streams'));
      fill(tbody, nodes.map((n) => h('tr', {'data-node': n.id, 'data-state': n.state},
        h('td', {}, n.id), h('td', {}, h('span.status', {'data-status': n.state}, n.state)),
        h('td', {}, String(n.actors ?? '')),
        h('td', {}, n.in_ring && total ? (100 * n.weight / total).toFixed(1) + ' %' : '—'))));
      fill(drain, nodes.map((n) => h('li', {}, h('code', {},
        (n.state === 'draining' ? 'bickyctl undrain ' : 'bickyctl drain ') + n.id))));
      const by = s.conversations_by_status || {};
      fill(counts, Object.entries(by).map(([k, v]) => [h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, String(v))]));
    } catch (e) { if (!gone) toast('Status: ' + e.message); }
    if (!gone) timer = setTimeout(load, 2000);
  }

  fill(root,
    h('section', {'aria-labelledby': 'cl-h'}, h('h1#cl-h', {}, 'Cluster'), summary,
      h('div.scroll', {}, h('table.list#nodes', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', {}, 'State'), h('th', {}, 'Actors'),
          h('th', {}, 'Ring share'))), tbody)),
      h('h2', {}, 'Drain or undrain a node'),
      h('p.muted', {}, 'Draining needs the cluster\'s admin key, not a team token: run the command with bickyctl ' +
        '(BICKY_ADMIN_CERT set); the state above follows within 2 s.'),
      drain,
      h('h2', {}, 'Conversations by status'), counts));
  load();
  return {destroy() { gone = true; clearTimeout(timer); }};
}
