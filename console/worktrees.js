// worktrees.js — #/worktrees: the team's worktrees; create one on a branch
// whose name is checked here (git's rules) before the gateway checks it
// again; delete one (forced only when asked, after a 409).
import {api, listAll} from './api.js';
import {h, fill, time, toast, branchProblem} from './dom.js';
import {onTeamEvent} from './app.js';

export function worktreesPage(root) {
  const tbody = h('tbody');
  const none = h('p.muted#wt-none', {hidden: true}, 'No worktree yet.');
  const branch = h('input#wt-branch', {type: 'text', maxlength: 200, required: true,
                                       'aria-describedby': 'wt-error', autocomplete: 'off'});
  const base = h('input#wt-base', {type: 'text', maxlength: 256, placeholder: 'HEAD'});
  const err = h('p.error#wt-error', {role: 'alert'});
  branch.addEventListener('input', () => { err.textContent = ''; branch.removeAttribute('aria-invalid'); });

  async function load() {
    try {
      const list = await listAll('/api/worktrees', 1000);
      fill(tbody, list.map((w) => h('tr', {'data-id': w.id, 'data-branch': w.branch},
        h('td', {}, w.branch), h('td', {}, w.status),
        h('td.hide-narrow', {}, w.base_ref || ''), h('td.hide-narrow.mono', {}, (w.head || '').slice(0, 12)),
        h('td', {}, time(w.created_at)),
        h('td', {}, h('button.danger.wt-delete', {type: 'button', onclick: () => remove(w)}, 'Delete')))));
      none.hidden = list.length > 0;
    } catch (e) { toast('Worktrees: ' + e.message); }
  }

  async function remove(w, force) {
    try {
      await api('DELETE', '/api/worktrees/' + w.id + (force ? '?force=true' : ''));
      load();
    } catch (ex) {
      if (ex.status === 409 && !force && confirm('The worktree ' + w.branch + ' has changes: ' + ex.message + '\nRemove it anyway?')) {
        remove(w, true);
      } else {
        toast('Delete: ' + ex.message);
      }
    }
  }

  const form = h('form.card.inline#wt-form', {onsubmit: async (e) => {
    e.preventDefault();
    const name = branch.value.trim();
    const why = branchProblem(name);
    if (why) {
      err.textContent = 'Invalid branch name: ' + why + '.';
      branch.setAttribute('aria-invalid', 'true');
      branch.focus();
      return;
    }
    const body = {branch: name};
    if (base.value.trim()) body.base = base.value.trim();
    try {
      await api('POST', '/api/worktrees', body);
      branch.value = '';
      load();
    } catch (ex) { err.textContent = ex.message; }
  }},
    h('h2', {}, 'New worktree'),
    h('div.fields', {}, h('label', {for: 'wt-branch'}, 'Branch'), branch,
      h('label', {for: 'wt-base'}, 'Base'), base),
    h('button#wt-create', {type: 'submit'}, 'Create'), err);

  const off = onTeamEvent((ev) => { if (ev.type.startsWith('worktree.')) load(); });
  fill(root, h('section', {'aria-labelledby': 'wt-h'}, h('h1#wt-h', {}, 'Worktrees'), form,
    h('div.scroll', {}, h('table.list#wt-list', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Branch'), h('th', {}, 'Status'),
        h('th.hide-narrow', {}, 'Base'), h('th.hide-narrow', {}, 'Head'), h('th', {}, 'Created'), h('th', {}, ''))),
      tbody)), none));
  load();
  return {destroy() { off(); }};
}
