// Text to image: the form, queue position, live progress with previews, the result gallery.
import { h, put, field, select, formData, progressBar, showError, toast } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { get, post, stream, download, local } from '../lib/api.js';

const SCHEDULERS = ['ddim', 'euler', 'euler_a', 'dpmpp_2m_karras', 'dpmpp_2m', 'lcm'];
const PRESETS = [[512, 512], [768, 768], [1024, 1024], [768, 512], [512, 768], [1024, 576], [576, 1024]];
const SAVED = 'atelier.playground';

export async function mount(main) {
  const models = (await get('/v1/models')).data.filter((m) => m.type !== 'llm');
  const saved = JSON.parse(sessionStorage.getItem(SAVED) || '{}');
  const abort = new AbortController();

  const form = h('form', { class: 'card stack', 'aria-labelledby': 'pg-title' });
  const errBox = h('div', { class: 'error', role: 'alert', hidden: true });
  const modelSel = select('model', models.map((m) => [m.id, m.id]), saved.model);
  const width = h('input', { type: 'number', name: 'width', min: 64, max: 2048, step: 8 });
  const height = h('input', { type: 'number', name: 'height', min: 64, max: 2048, step: 8 });
  const preset = select('size_preset', [['', t('Model default')], ...PRESETS.map(([w, hh]) => [`${w}x${hh}`, `${w} × ${hh}`]), ['custom', t('Custom')]]);
  preset.removeAttribute('name');
  preset.addEventListener('change', () => {
    const [w, hh] = preset.value.split('x').map(Number);
    if (w) { width.value = w; height.value = hh; }
    if (!preset.value) { width.value = ''; height.value = ''; }
  });
  for (const i of [width, height]) i.addEventListener('input', () => { preset.value = 'custom'; });
  const seed = h('input', { type: 'number', name: 'seed', min: 0, step: 1 });
  const lock = h('input', { type: 'checkbox', id: 'seed-lock' });
  const submit = h('button', { type: 'submit', class: 'primary' }, t('Generate'));

  if (!models.length) {
    put(main, h('h1', { id: 'pg-title' }, t('Playground')),
      h('div', { class: 'card' }, h('p', {}, t('No image model is installed. Pull one on the Models page or copy a diffusers folder into the models folder.')),
        h('a', { href: '#/models', class: 'button' }, t('Open Models'))));
    return () => abort.abort();
  }

  put(form,
    h('h1', { id: 'pg-title' }, t('Playground')),
    field(t('Prompt'), h('textarea', { name: 'prompt', rows: 3, required: true, maxlength: 2000, value: saved.prompt || '' })),
    field(t('Negative prompt'), h('textarea', { name: 'negative_prompt', rows: 2, maxlength: 2000, value: saved.negative_prompt || '' })),
    h('div', { class: 'grid3' },
      field(t('Model'), modelSel),
      field(t('Size'), preset),
      h('div', { class: 'pair' }, field(t('Width'), width), field(t('Height'), height))),
    h('div', { class: 'grid3' },
      field(t('Steps'), h('input', { type: 'number', name: 'steps', min: 1, max: 150, value: saved.steps ?? 20 })),
      field(t('Guidance'), h('input', { type: 'number', name: 'guidance_scale', min: 0, max: 30, step: 0.5, value: saved.guidance_scale ?? 7.5 })),
      field(t('Scheduler'), select('scheduler', [['', t('Model default')], ...SCHEDULERS], saved.scheduler))),
    h('div', { class: 'grid3' },
      h('div', { class: 'field' }, h('label', { for: 'seed-input' }, t('Seed')),
        h('div', { class: 'row' }, Object.assign(seed, { id: 'seed-input' }),
          h('label', { class: 'check', for: 'seed-lock' }, lock, t('Lock')))),
      field(t('Images'), select('num_outputs', ['1', '2', '3', '4'], saved.num_outputs || '1')),
      h('div', { class: 'field end' }, submit)),
    errBox);

  const status = h('section', { class: 'card stack', 'aria-live': 'polite', hidden: true, id: 'run' });
  const gallery = h('section', { class: 'gallery', 'aria-label': t('Results') });
  put(main, form, status, gallery);

  let running = null;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(errBox, null, form);
    const input = formData(form);
    sessionStorage.setItem(SAVED, JSON.stringify(input));
    input.num_outputs = Number(input.num_outputs);
    if (!lock.checked) delete input.seed;
    if (running) running.abort();
    running = new AbortController();
    try {
      const job = await post('/v1/models/atelier/text-to-image/predictions', { input });
      await watch(job, running.signal);
    } catch (e) {
      if (e.name !== 'AbortError') showError(errBox, e, form);
    }
  });

  async function watch(job, signal) {
    const queue = h('p', { class: 'queue' });
    const bar = progressBar(t('Generation progress'));
    const preview = h('img', { class: 'preview', alt: t('Live preview'), hidden: true });
    const cancel = h('button', { type: 'button', class: 'danger', onclick: async () => {
      cancel.disabled = true;
      try { await post(`/v1/predictions/${job.id}/cancel`); } catch (e) { toast(e.message, 'error'); }
    } }, t('Cancel'));
    const state = h('p', { class: 'state' }, t('Queued'));
    status.hidden = false;
    const title = h('h2', {}, t('Running'));
    put(status, title, state, queue, bar, preview, h('div', { class: 'row' }, cancel));
    submit.disabled = true;
    // Queue position comes from the job document until the worker starts it.
    const stopQueue = setInterval(async () => {
      try {
        const j = await get(`/v1/predictions/${job.id}`, { signal });
        if (j.queue_position != null && j.status === 'starting') queue.textContent = t('Queue position: {n}', { n: j.queue_position + 1 });
        else queue.textContent = '';
      } catch { /* the stream reports errors */ }
    }, 1000);
    if (job.queue_position != null) queue.textContent = t('Queue position: {n}', { n: job.queue_position + 1 });
    try {
      await stream(`/v1/predictions/${job.id}/stream`, (ev) => {
        if (ev.event === 'status') state.textContent = ev.data.status === 'processing' ? t('Generating') : t('Queued');
        if (ev.event === 'progress') {
          const d = ev.data;
          bar.set(d.fraction, t('Step {step} of {total}', { step: d.step, total: d.total }) + (d.eta_s != null ? ` · ${t('{s} s left', { s: Math.ceil(d.eta_s) })}` : ''));
          if (d.preview) { preview.src = d.preview; preview.hidden = false; }
        }
      }, signal);
    } finally {
      clearInterval(stopQueue);
      submit.disabled = false;
    }
    const done = await get(`/v1/predictions/${job.id}`, { signal });
    cancel.hidden = true;
    queue.textContent = '';
    title.textContent = t('Finished');
    if (done.status === 'succeeded') {
      bar.set(1, t('Done'));
      state.textContent = t('Done');
      status.hidden = true;
      show(done);
    } else if (done.status === 'canceled') {
      state.textContent = t('Canceled');
    } else {
      state.textContent = `${t('Failed')}: ${done.error || ''}${done.error_code ? ` (${done.error_code})` : ''}`;
      state.classList.add('error');
    }
  }

  function show(job) {
    const out = job.output || {};
    if (!lock.checked && out.seeds && out.seeds.length) seed.value = out.seeds[0];
    (out.images || []).forEach((url, i) => {
      const params = { ...job.input, seed: (out.seeds || [])[i] };
      const src = local(url);
      const name = `atelier-${job.id}-${i}.png`;
      const facts = [
        [t('Model'), params.model || modelSel.value],
        [t('Seed'), params.seed],
        [t('Size'), params.width && params.height ? `${params.width} × ${params.height}` : null],
        [t('Steps'), params.steps],
        [t('Guidance'), params.guidance_scale],
        [t('Scheduler'), params.scheduler || t('Model default')],
      ];
      gallery.prepend(h('figure', { class: 'card result' },
        h('img', { src, alt: params.prompt, class: 'result-image', dataset: { job: job.id } }),
        h('figcaption', {},
          h('p', { class: 'prompt' }, params.prompt),
          h('dl', { class: 'facts' }, facts.filter(([, v]) => v != null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])),
          h('div', { class: 'row' },
            h('button', { type: 'button', onclick: () => download(url, name).catch((e) => toast(e.message, 'error')) }, t('Download')),
            h('button', { type: 'button', onclick: () => reuse(params) }, t('Reuse settings'))))));
    });
  }

  function reuse(p) {
    for (const [k, v] of Object.entries(p)) {
      const el = form.elements.namedItem(k);
      if (el && v != null) el.value = String(v);
    }
    if (p.width && p.height) preset.value = PRESETS.some(([w, hh]) => w === p.width && hh === p.height) ? `${p.width}x${p.height}` : 'custom';
    lock.checked = p.seed != null;
    form.scrollIntoView({ behavior: 'smooth' });
    form.elements.namedItem('prompt').focus();
    toast(t('Settings copied into the form'));
  }

  return () => { abort.abort(); if (running) running.abort(); };
}
