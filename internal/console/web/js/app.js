// The console's router: #/page/arg?query. Each page module exports render(view, arg,
// query) and may return a function that stops what it started (polling, a player).
import { get, hooks, setToken, token } from './api.js';
import { h, errorBox } from './ui.js';

// Pages load when first shown: the first paint needs only this file, api.js, ui.js
// (preloaded by index.html) and one page.
const pages = {
  live: () => import('./live.js'),
  recordings: () => import('./recordings.js'),
  play: () => import('./player.js'),
  assets: () => import('./assets.js'),
  asset: () => import('./assets.js').then((m) => ({ render: m.renderAsset })),
  rules: () => import('./rules.js'),
  callbacks: () => import('./callbacks.js'),
  status: () => import('./status.js'),
};
const view = document.getElementById('view');
let stop = null;
let needLogin = false;
let routeSeq = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, query = ''] = raw.split('?');
  const [page, ...rest] = pathPart.split('/');
  return { page: page || 'live', arg: rest.map(decodeURIComponent).join('/'), query: new URLSearchParams(query) };
}

async function route() {
  if (stop) { try { stop(); } catch { /* a page's cleanup must not break navigation */ } stop = null; }
  const { page, arg, query } = parseHash();
  document.querySelectorAll('#nav a[data-page]').forEach((a) => {
    a.toggleAttribute('aria-current', a.dataset.page === page || (page === 'play' && a.dataset.page === 'recordings') || (page === 'asset' && a.dataset.page === 'assets'));
  });
  document.getElementById('nav').classList.remove('open');
  if (needLogin) { renderLogin(); return; }
  const load = pages[page];
  if (!load) { view.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No page ', page, '.')); return; }
  const seq = ++routeSeq;
  try {
    const mod = await load();
    if (seq !== routeSeq) return; // navigated on meanwhile
    view.replaceChildren();
    document.body.dataset.page = page;
    stop = (await mod.render(view, arg, query)) || null;
  } catch (err) {
    if (!needLogin) view.append(errorBox(err));
  }
}

// renderLogin asks for an API token (apiTokens in the configuration). The token is
// checked against the API before it is kept.
function renderLogin(message) {
  document.body.dataset.page = 'login';
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, minlength: 16 });
  const err = h('p', { class: 'error', role: 'alert' }, message || '');
  const form = h('form', { class: 'card login', onsubmit: async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    try {
      await get('/status');
      needLogin = false;
      showWho();
      route();
    } catch (e2) {
      setToken('');
      err.textContent = e2.status === 401 ? 'This token is not accepted.' : e2.message;
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'This livrec requires an API token (one of apiTokens in its configuration, or LIVREC_API_TOKEN).'),
  h('label', { for: 'token' }, 'API token'), input, err,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  view.replaceChildren(form);
  input.focus();
}

function showWho() {
  const who = document.getElementById('who');
  who.replaceChildren();
  if (token()) {
    who.append(h('button', { type: 'button', class: 'link', onclick: () => { setToken(''); needLogin = true; showWho(); route(); } }, 'Sign out'));
  }
}

hooks.onUnauthorized = () => {
  if (needLogin) return;
  needLogin = true;
  setToken('');
  if (stop) { stop(); stop = null; }
  showWho();
  renderLogin();
};

document.querySelector('.menu-toggle').addEventListener('click', (e) => {
  const open = document.getElementById('nav').classList.toggle('open');
  e.currentTarget.setAttribute('aria-expanded', String(open));
});
document.getElementById('nav').addEventListener('click', (e) => {
  if (e.target.closest('a[href]')) document.getElementById('nav').classList.remove('open'); // also when the page stays
});
window.addEventListener('hashchange', route);
showWho();
route();
