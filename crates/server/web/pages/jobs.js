// My jobs: status and app filters, live updates, cancel, open the result.
import { h, put, select, badge, fmtTime, shortId, toast } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { get, post, poll, local } from '../lib/api.js';

const STATUSES = ['starting', 'processing', 'succeeded', 'failed', 'canceled'];
const ACTIVE = new Set(['starting', 'processing']);

export async function mount(main, _params, ctx) {
  const apps = (ctx.system && ctx.system.apps) || [];
  const status = select('status', [['', t('All')], ...STATUSES.map((s) => [s, t(s)])]);
  status.id = 'jobs-status';
  const app = select('model', [['', t('All')], ...apps.map((a) => [a, a])]);
  app.id = 'jobs-app';
  const body = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, t('Load more'));
  const detail = h('section', { class: 'card stack', hidden: true, 'aria-live': 'polite', id: 'job-detail' });
  let pages = 1;
  let openId = null;
  let shown = '';

  put(main,
    h('h1', {}, t('Jobs')),
    h('div', { class: 'card row filters' },
      h('label', { for: 'jobs-status' }, t('Status')), status,
      h('label', { for: 'jobs-app' }, t('App')), app),
    detail,
    h('div', { class: 'table-wrap' }, h('table', { class: 'jobs' },
      h('caption', { class: 'sr-only' }, t('Jobs, newest first')),
      h('thead', {}, h('tr', {}, [t('Job'), t('App'), t('Status'), t('Progress'), t('Created'), t('Actions')].map((c) => h('th', { scope: 'col' }, c)))),
      body)),
    more);

  const query = (cursor) => {
    const q = new URLSearchParams({ limit: '20' });
    if (status.value) q.set('status', status.value);
    if (app.value) q.set('model', app.value);
    if (cursor) q.set('cursor', cursor);
    return `/v1/predictions?${q}`;
  };

  async function refresh() {
    let rows = [];
    let next = null;
    let url = query();
    for (let i = 0; i < pages && url; i++) {
      const page = await get(url);
      rows = rows.concat(page.results);
      next = page.next;
      url = next ? local(next) : null;
    }
    put(body, rows.length ? rows.map(row) : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, t('No jobs yet.'))));
    more.hidden = !next;
    if (openId) {
      const j = rows.find((r) => r.id === openId);
      if (j && shown !== `${j.id}:${j.status}`) open(j);
    }
  }

  function row(j) {
    const frac = j.progress && j.progress.fraction != null ? j.progress.fraction : null;
    return h('tr', { dataset: { job: j.id, status: j.status } },
      h('td', {}, h('code', { title: j.id }, shortId(j.id))),
      h('td', {}, j.model),
      h('td', {}, badge(j.status, t(j.status)), j.status === 'starting' && j.queue_position != null ? h('small', { class: 'muted' }, ` #${j.queue_position + 1}`) : null),
      h('td', {}, frac != null ? h('progress', { max: 1, value: frac, 'aria-label': t('Progress of {id}', { id: shortId(j.id) }) }) : ''),
      h('td', {}, fmtTime(j.created_at)),
      h('td', { class: 'row' },
        h('button', { type: 'button', onclick: () => { openId = j.id; open(j); } }, t('Open')),
        ACTIVE.has(j.status) ? h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await post(`/v1/predictions/${j.id}/cancel`); toast(t('Cancel requested')); refresh(); } catch (e) { toast(e.message, 'error'); }
        } }, t('Cancel')) : null));
  }

  // Pictures are under `images` (text-to-image) or `file`/`image`; other files are listed as links.
  function files(output) {
    const pics = [];
    const other = [];
    const walk = (v, key) => {
      if (typeof v === 'string' && v.includes('/v1/files/')) (/^(images?|file|comic)$/.test(key) ? pics : other).push(v);
      else if (Array.isArray(v)) v.forEach((x) => walk(x, key));
      else if (v && typeof v === 'object') Object.entries(v).forEach(([k, x]) => walk(x, k));
    };
    walk(output, '');
    return { pics, other };
  }

  function open(j) {
    shown = `${j.id}:${j.status}`;
    detail.hidden = false;
    const { pics, other } = files(j.output);
    put(detail,
      h('div', { class: 'row spread' }, h('h2', {}, `${t('Job')} ${shortId(j.id)}`),
        h('button', { type: 'button', class: 'ghost', onclick: () => { openId = null; detail.hidden = true; } }, t('Close'))),
      h('p', {}, badge(j.status, t(j.status)), ' ', j.model),
      j.error ? h('p', { class: 'error' }, j.error, j.error_code ? ` (${j.error_code})` : '') : null,
      pics.length ? h('div', { class: 'thumbs' }, pics.map((u) =>
        h('a', { href: local(u), target: '_blank', rel: 'noopener' }, h('img', { src: local(u), alt: t('Output of {id}', { id: shortId(j.id) }), loading: 'lazy' })))) : null,
      other.length ? h('ul', { class: 'links' }, other.map((u, i) => h('li', {}, h('a', { href: local(u), target: '_blank', rel: 'noopener' }, `${t('File')} ${i + 1}`)))) : null,
      h('details', {}, h('summary', {}, t('Input')), h('pre', { tabindex: 0 }, JSON.stringify(j.input, null, 2))));
  }

  status.addEventListener('change', () => { pages = 1; refresh(); });
  app.addEventListener('change', () => { pages = 1; refresh(); });
  more.addEventListener('click', () => { pages++; refresh(); });
  const stop = poll(refresh, 2000);
  return stop;
}
