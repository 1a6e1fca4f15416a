// The shell: navigation, language switch, API key, and a hash router that mounts one page at a
// time. Each page module exports `mount(main, params, ctx)` and may return a cleanup function.
import { h, put, toast } from './lib/dom.js';
import { t, lang, setLang } from './lib/i18n.js';
import { auth, get, ApiError } from './lib/api.js';

const pages = {
  playground: ['Playground', () => import('./pages/playground.js')],
  jobs: ['Jobs', () => import('./pages/jobs.js')],
  tickets: ['Tickets', () => import('./pages/tickets.js')],
  lounge: ['Lounge', () => import('./pages/lounge.js')],
  storyboards: ['Storyboards', () => import('./pages/storyboards.js')],
  models: ['Models', () => import('./pages/models.js')],
};

const ctx = { system: null };
let cleanup = null;
let generation = 0;

function nav(current) {
  const el = document.getElementById('nav');
  put(el, h('ul', {}, Object.entries(pages).map(([id, [name]]) =>
    h('li', {}, h('a', { href: `#/${id}`, 'aria-current': id === current ? 'page' : null }, t(name))))));
}

function actions() {
  const box = document.getElementById('top-actions');
  const other = lang === 'ko' ? 'en' : 'ko';
  const langBtn = h('button', {
    type: 'button', class: 'ghost', lang: other,
    title: other === 'ko' ? '한국어로 보기' : 'View in English',
    onclick: () => { setLang(other); render(); },
  }, other === 'ko' ? '한국어' : 'English');
  const keyBtn = h('button', { type: 'button', class: 'ghost', onclick: askKey },
    auth.key ? t('API key ✓') : t('API key'));
  put(box, langBtn, ctx.system && ctx.system.open_mode && !auth.key ? null : keyBtn);
}

function askKey() {
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', value: auth.key });
  const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'key-title' },
    h('form', { method: 'dialog', onsubmit: () => { auth.key = input.value.trim(); dlg.remove(); boot(); } },
      h('h2', { id: 'key-title' }, t('API key')),
      h('p', {}, t('This server needs an API key. Create one with `atelier keys create --tenant NAME`.')),
      h('label', { for: 'api-key-input' }, t('Key')),
      Object.assign(input, { id: 'api-key-input' }),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary' }, t('Save')),
        h('button', { type: 'button', class: 'ghost', onclick: () => dlg.remove() }, t('Close')))));
  document.body.append(dlg);
  dlg.showModal();
}

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const page = pages[parts[0]] ? parts[0] : 'playground';
  return { page, params: parts.slice(1) };
}

async function render() {
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  const { page, params } = route();
  nav(page);
  actions();
  const main = document.getElementById('main');
  const skip = document.querySelector('.skip');
  if (skip) skip.textContent = t('Skip to content');
  document.title = `${t(pages[page][0])} · atelier`;
  put(main, h('p', { class: 'muted' }, t('Loading…')));
  try {
    const mod = await pages[page][1]();
    if (mine !== generation) return;
    put(main);
    const c = await mod.mount(main, params, ctx);
    if (mine !== generation) { if (typeof c === 'function') c(); return; }
    cleanup = typeof c === 'function' ? c : null;
  } catch (e) {
    if (mine !== generation) return;
    put(main, h('div', { class: 'error', role: 'alert' }, e.message || String(e)));
  }
}

function keyNeeded() {
  nav(route().page);
  actions();
  put(document.getElementById('main'),
    h('section', { class: 'card stack' }, h('h1', {}, t('Sign in with an API key')),
      h('p', {}, t('This server needs an API key. Create one with `atelier keys create --tenant NAME`.')),
      h('button', { type: 'button', class: 'primary', onclick: askKey }, t('Enter API key'))));
}

async function boot() {
  try {
    // Ask whether a key is needed before sending a request that would be refused.
    if (!auth.key && (await get('/readyz')).auth === 'key') { ctx.system = null; keyNeeded(); return; }
    ctx.system = await get('/v1/system');
  } catch (e) {
    ctx.system = null;
    if (e instanceof ApiError && e.status === 401) { auth.key = ''; keyNeeded(); return; }
    toast(e.message, 'error');
  }
  render();
}

window.addEventListener('hashchange', render);
boot();
