// Models: what is installed, what is loaded and its memory, pulling a model with progress, and
// the safety checker and language model status.
import { h, put, field, progressBar, showError, fmtBytes, fmtTime, badge } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { get, post, poll } from '../lib/api.js';

export async function mount(main, _params, ctx) {
  const stops = [];
  const table = h('tbody');
  const status = h('dl', { class: 'facts wide' });
  const pulls = h('ol', { class: 'pulls', 'aria-label': t('Pulls') });
  const err = h('div', { class: 'error', role: 'alert', hidden: true });
  const form = h('form', { class: 'card stack', 'aria-labelledby': 'pull-title' },
    h('h2', { id: 'pull-title' }, t('Pull a model')),
    field(t('Repository'), h('input', { name: 'repo', required: true, placeholder: 'stabilityai/sd-turbo', maxlength: 200 }),
      t('A Hugging Face repository: a diffusers pipeline or a language model.')),
    field(t('Revision'), h('input', { name: 'revision', placeholder: 'main', maxlength: 200 })),
    err, h('button', { type: 'submit', class: 'primary' }, t('Pull')), pulls);

  async function refresh() {
    const [models, sys, pl] = await Promise.all([get('/v1/models'), get('/v1/system'), get('/v1/models/pulls')]);
    ctx.system = sys;
    const mem = new Map(sys.models.loaded.map((m) => [m.name, m.memory_bytes]));
    const rows = models.data.filter((m) => m.type !== 'llm');
    put(table, rows.length ? rows.map((m) => h('tr', { dataset: { model: m.id } },
      h('th', { scope: 'row' }, m.id),
      h('td', {}, m.family),
      h('td', {}, `${m.native_size}²`),
      h('td', {}, m.default_scheduler),
      h('td', {}, mem.has(m.id) ? badge('loaded', t('loaded')) : h('span', { class: 'muted' }, t('not loaded'))),
      h('td', {}, mem.has(m.id) ? fmtBytes(mem.get(m.id)) : '–')))
      : h('tr', {}, h('td', { colspan: 6 }, models.message || t('No models installed.'))));
    const yes = (b) => (b ? t('yes') : t('no'));
    put(status,
      h('dt', {}, t('Image safety checker')), h('dd', {}, sys.safety.image_checker ? t('loaded: images are screened') : t('not installed: images are reported as not screened')),
      h('dt', {}, t('Invisible watermark')), h('dd', {}, yes(sys.safety.watermark)),
      h('dt', {}, t('C2PA manifests')), h('dd', {}, yes(sys.safety.c2pa)),
      h('dt', {}, t('Language model')), h('dd', {}, sys.llm ? `${sys.llm.id} (${sys.llm.source})` : t('not configured (start with --llm PATH or --llm-url URL)')),
      h('dt', {}, t('Models loaded')), h('dd', {}, `${sys.models.loaded.length} / ${sys.models.max_loaded}`),
      h('dt', {}, t('Model folders')), h('dd', {}, sys.models.dirs.join(', ')),
      h('dt', {}, t('Queue')), h('dd', {}, t('{n} waiting · {w} workers', { n: sys.queue_depth, w: sys.workers })),
      h('dt', {}, t('Images generated')), h('dd', {}, String(sys.models.generations)));
    form.hidden = !sys.model_pull;
    put(pulls, pl.data.map(pullItem));
    return pl.data.some((p) => p.status === 'running');
  }

  function pullItem(p) {
    const bar = progressBar(t('Pull of {repo}', { repo: p.repo }));
    const frac = p.status === 'succeeded' ? 1 : p.files_total ? (p.files_done + (p.file_size ? p.file_bytes / p.file_size : 0)) / p.files_total : 0;
    bar.set(frac, p.status === 'running'
      ? t('{done} of {total} files · {bytes}', { done: p.files_done, total: p.files_total ?? '?', bytes: fmtBytes(p.bytes) })
      : `${t(p.status)} · ${fmtBytes(p.bytes)}`);
    return h('li', { class: 'pull', dataset: { status: p.status } },
      h('p', {}, h('strong', {}, p.repo), ` @${p.revision} `, badge(p.status, t(p.status)), h('small', { class: 'muted' }, ` ${fmtTime(p.started_ms)}`)),
      bar,
      p.file ? h('small', { class: 'muted' }, p.file) : null,
      p.path ? h('small', {}, t('Saved to {path}', { path: p.path })) : null,
      p.error ? h('p', { class: 'error' }, p.error) : null);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null, form);
    const repo = form.elements.repo.value.trim();
    const revision = form.elements.revision.value.trim() || undefined;
    try {
      await post('/v1/models/pulls', { repo, revision });
      stops.push(poll(refresh, 500));
    } catch (e) { showError(err, e, form); }
  });

  put(main, h('h1', {}, t('Models')),
    h('div', { class: 'table-wrap card' }, h('table', {},
      h('caption', {}, t('Installed image models')),
      h('thead', {}, h('tr', {}, [t('Model'), t('Family'), t('Native size'), t('Scheduler'), t('State'), t('Memory')].map((c) => h('th', { scope: 'col' }, c)))),
      table)),
    h('div', { class: 'split' },
      h('section', { class: 'card', 'aria-labelledby': 'sys-title' }, h('h2', { id: 'sys-title' }, t('Safety and language model')), status),
      form));
  stops.push(poll(async () => { await refresh(); return true; }, 3000));
  return () => stops.forEach((s) => s());
}
