// app.js — the console's entry: sign-in, the hash router (#/conversations,
// #/c/<id>, #/permissions, #/worktrees, #/cluster) and the team's live
// stream (/api/stream), which every page listens to for its live updates.
import {api, stream, token, setToken, clearToken, setUnauthorizedHandler, ApiError} from './api.js';
import {h, fill, toast} from './dom.js';
import {conversationsPage} from './conversations.js';
import {conversationPage} from './conversation.js';
import {permissionsPage} from './permissions.js';
import {worktreesPage} from './worktrees.js';
import {clusterPage} from './cluster.js';

const main = () => document.getElementById('main');
const listeners = new Set();
let teamStream = null;
let page = null; // {destroy()} of the page shown

// The team stream's events go to every page that asked: onTeamEvent(fn) → off().
export function onTeamEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function setConn(text, kind) {
  const el = document.getElementById('conn');
  el.textContent = text;
  el.dataset.kind = kind;
}

function startTeamStream() {
  if (teamStream) return;
  teamStream = stream('/api/stream', {
    onEvent: (ev) => { for (const fn of listeners) fn(ev); },
    onState: (s) => {
      if (s === 'live') setConn('live', 'live');
      else if (s === 'reconnecting') setConn('reconnecting…', 'down');
      for (const fn of listeners) fn({type: 'stream.' + s});
    },
  });
}

function signOut() {
  if (teamStream) { teamStream.close(); teamStream = null; }
  clearToken();
  location.hash = '#/';
  route();
}

function signInPage(root) {
  const input = h('input#token', {type: 'password', autocomplete: 'off', required: true,
                                  'aria-describedby': 'token-help', spellcheck: 'false'});
  const err = h('p.error#signin-error', {role: 'alert'});
  const form = h('form.card.signin', {onsubmit: async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    try {
      // Checked before it is kept, so a refused token leaves nothing behind.
      await api('GET', '/api/status', undefined, {Authorization: 'Bearer ' + t});
      setToken(t);
      if (!location.hash || location.hash === '#/' || location.hash === '#/signin') {
        location.hash = '#/conversations';
      }
      route();
    } catch (ex) {
      err.textContent = ex instanceof ApiError && ex.status === 401
        ? 'This token is not valid.' : 'Sign-in failed: ' + ex.message;
    }
  }},
    h('h1', {}, 'Sign in'),
    h('label', {for: 'token'}, 'Team token'), input,
    h('p.muted#token-help', {}, 'The token stays in this tab (session storage) and is sent only to this gateway.'),
    h('button', {type: 'submit'}, 'Sign in'), err);
  fill(root, form);
  input.focus();
  return {destroy() {}};
}

const pages = [
  [/^#\/conversations$/, 'conversations', () => conversationsPage],
  [/^#\/c\/([0-9a-fA-F-]{36})$/, 'conversations', () => conversationPage],
  [/^#\/permissions$/, 'permissions', () => permissionsPage],
  [/^#\/worktrees$/, 'worktrees', () => worktreesPage],
  [/^#\/cluster$/, 'cluster', () => clusterPage],
];

function route() {
  if (page) { page.destroy(); page = null; }
  const signedIn = !!token();
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn;
  const root = main();
  if (!signedIn) {
    setConn('', '');
    page = signInPage(root);
    document.body.dataset.page = 'signin';
    return;
  }
  startTeamStream();
  let hash = location.hash || '#/conversations';
  let found = pages.find(([re]) => re.test(hash));
  if (!found) { hash = '#/conversations'; history.replaceState(null, '', hash); found = pages[0]; }
  const [re, nav, get] = found;
  const args = hash.match(re).slice(1);
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.dataset.page = nav + (args.length ? '-one' : '');
  fill(root);
  page = get()(root, ...args);
  root.focus({preventScroll: true});
}

async function pendingBadge() {
  if (!token()) return;
  try {
    const list = await api('GET', '/api/permissions?status=pending&limit=500');
    const el = document.getElementById('perm-count');
    const n = (list.data || []).length;
    el.textContent = String(n);
    el.hidden = n === 0;
  } catch (e) { /* shown by the page itself */ }
}

setUnauthorizedHandler(() => {
  if (!token()) return;
  toast('The token was refused: sign in again.');
  signOut();
});

window.addEventListener('hashchange', route);
function init() {
  document.getElementById('signout').addEventListener('click', signOut);
  onTeamEvent((ev) => {
    if (ev.type.startsWith('permission.') || ev.type === 'stream.live') pendingBadge();
  });
  route();
  pendingBadge();
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
