// Storyboard studio: a brief becomes cuts with pictures; edit a cut, redraw one, reorder by drag
// or buttons, browse and restore versions, comment per cut, download the sheet, animatic and ZIP.
import { h, put, field, select, formData, progressBar, showError, badge, fmtTime, toast } from '../lib/dom.js';
import { t, lang } from '../lib/i18n.js';
import { get, post, api, download, poll, local, ApiError } from '../lib/api.js';

const STEPS = ['screen', 'script', 'images', 'sheet', 'animatic', 'manifest'];
const BUSY = new Set(['pending', 'processing']);

export async function mount(main, params, ctx) {
  if (params[0]) return studio(main, params[0]);
  return listPage(main, ctx);
}

/** "scene | camera | copy | seconds" per line → script cuts. */
function parseScript(text) {
  const cuts = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const [scene, camera = '', copy = '', secs = '2'] = line.split('|').map((s) => s.trim());
    const duration = Number(secs.replace(/s$/i, ''));
    if (!scene || !Number.isFinite(duration)) throw new ApiError(422, { error: { message: t('Line {n}: write scene | camera | copy | seconds', { n: i + 1 }), field: 'script' } });
    cuts.push({ scene, camera, copy, duration_s: duration });
  }
  return cuts;
}

async function listPage(main, ctx) {
  const cats = (await get('/v1/storyboards/categories')).data;
  const needScript = !(ctx.system && ctx.system.llm);
  const err = h('div', { class: 'error', role: 'alert', hidden: true });
  const form = h('form', { class: 'card stack', 'aria-labelledby': 'brief-title' },
    h('h2', { id: 'brief-title' }, t('New storyboard')),
    h('div', { class: 'grid2' },
      field(t('Product'), h('input', { name: 'product', required: true, maxlength: 100 })),
      field(t('Category'), select('category', cats.map((c) => [c.id, lang === 'ko' ? c.ko : c.en]), 'other'))),
    field(t('Brief'), h('textarea', { name: 'brief', rows: 3, required: true, maxlength: 3000 })),
    h('div', { class: 'grid3' },
      field(t('Tone'), h('input', { name: 'tone', maxlength: 50, placeholder: 'warm' })),
      field(t('Cuts'), h('input', { type: 'number', name: 'cuts', min: 4, max: 8, value: 6 })),
      field(t('Length (s)'), h('input', { type: 'number', name: 'target_seconds', min: 2, max: 120, value: 15 }))),
    h('div', { class: 'grid2' },
      field(t('Aspect'), select('aspect', ['16:9', '9:16', '1:1'], '16:9')),
      field(t('Style'), h('input', { name: 'style', maxlength: 300 }))),
    field(needScript ? t('Script (no language model is configured: write 4–8 cuts)') : t('Script (optional: leave empty to let the language model write it)'),
      h('textarea', { name: 'script', rows: 6, required: needScript, placeholder: t('scene | camera | copy | seconds') }),
      t('One cut per line: scene | camera | copy | seconds')),
    err, h('button', { type: 'submit', class: 'primary' }, t('Create storyboard')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null, form);
    try {
      const d = formData(form);
      const body = { product: d.product, category: d.category, brief: d.brief, aspect: d.aspect };
      for (const k of ['tone', 'style', 'cuts', 'target_seconds']) if (d[k] !== undefined) body[k] = d[k];
      if (d.script) {
        const cuts = parseScript(d.script);
        body.script = { cuts };
        body.cuts = cuts.length;
      }
      const b = await post('/v1/storyboards', body);
      location.hash = `#/storyboards/${b.id}`;
    } catch (e) { showError(err, e, form); }
  });
  const list = h('ul', { class: 'cards', 'aria-label': t('Storyboards') });
  put(main, h('h1', {}, t('Storyboard studio')), h('div', { class: 'split' },
    h('section', { 'aria-labelledby': 'sb-list' }, h('h2', { id: 'sb-list' }, t('Storyboards')), list), form));
  const { data } = await get('/v1/storyboards');
  put(list, data.length ? data.map((b) => h('li', { class: 'card' },
    h('h3', {}, h('a', { href: `#/storyboards/${b.id}` }, b.title || b.product)),
    h('p', { class: 'muted' }, `${b.product} · v${b.head} · ${fmtTime(b.updated_at)}`))) : h('li', { class: 'muted' }, t('No storyboards yet.')));
}

/** What made a version, in words: created, the edit operations, or a restore. */
function describe(action) {
  const a = action || {};
  if (a.kind === 'restore') return t('restored from v{n}', { n: a.from });
  const names = { edit: t('text edit'), regenerate: t('redraw'), move: t('reorder'), insert: t('cut added'), delete: t('cut deleted'), title: t('new title') };
  if (a.kind === 'edit') return (a.ops || []).map((o) => names[o.op] || o.op).join(', ') || t('edited');
  return t('created');
}

async function studio(main, id) {
  let board = null;
  let openComments = null;
  const head = h('div', { class: 'stack' });
  const bar = progressBar(t('Storyboard progress'));
  const downloads = h('div', { class: 'row wrap', 'aria-label': t('Downloads') });
  const grid = h('ol', { class: 'cuts', 'aria-label': t('Cuts') });
  const versions = h('ol', { class: 'versions', 'aria-label': t('Versions') });
  const commentBox = h('section', { class: 'card stack', hidden: true, 'aria-live': 'polite', id: 'cut-comments' });
  const url = `/v1/storyboards/${encodeURIComponent(id)}`;

  // A new cut at the end (it gets a picture of its own; the others are kept).
  const addErr = h('div', { class: 'error', role: 'alert', hidden: true });
  const add = h('form', { class: 'card stack', 'aria-labelledby': 'add-cut' },
    h('h3', { id: 'add-cut' }, t('Add a cut')),
    h('div', { class: 'grid2' },
      field(t('Scene'), h('input', { name: 'scene', required: true, maxlength: 150 })),
      field(t('Camera'), h('input', { name: 'camera', maxlength: 60 }))),
    h('div', { class: 'grid2' },
      field(t('Copy'), h('input', { name: 'copy', maxlength: 80 })),
      field(t('Seconds'), h('input', { type: 'number', name: 'duration_s', min: 0.5, max: 15, step: 0.5, value: 2 }))),
    addErr, h('button', { type: 'submit' }, t('Add cut')));
  add.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(addErr, null, add);
    if (await change('POST', '/cuts', formData(add))) add.reset();
  });

  put(main, h('p', {}, h('a', { href: '#/storyboards' }, `← ${t('Storyboards')}`)), head, bar, downloads,
    h('div', { class: 'studio' },
      h('section', { 'aria-labelledby': 'cuts-title', class: 'stack' }, h('h2', { id: 'cuts-title' }, t('Cuts')),
        h('p', { class: 'muted' }, t('Drag a cut onto another to move it, or use the arrow buttons.')), grid, add),
      h('aside', { class: 'stack' }, commentBox,
        h('section', { class: 'card', 'aria-labelledby': 'v-title' }, h('h2', { id: 'v-title' }, t('Versions')), versions))));

  async function change(method, path, body) {
    try {
      const r = await api(method, `${url}${path}`, { ...(body || {}), base: board.head });
      // The new version is being drawn: follow it until it settles.
      follow();
      return r;
    } catch (e) {
      if (e.status === 409) { toast(t('The board changed meanwhile; showing the latest version.'), 'error'); await load(); }
      else toast(e.message, 'error');
      return null;
    }
  }

  async function load() {
    board = await get(url);
    const v = board.current;
    const done = (v.steps || []).filter((s) => s.status === 'done').length;
    const failedStep = (v.steps || []).find((st) => st.status === 'failed');
    const why = failedStep && failedStep.error ? `${failedStep.step}: ${failedStep.error.message || failedStep.error.code || ''}` : '';
    put(head, h('h1', {}, v.title || board.product),
      h('p', {}, badge(v.status, t(v.status)), ` ${t('version {n}', { n: v.version })} · ${board.product} · ${t('{s} s', { s: v.duration_s })}`),
      v.status === 'failed' || v.status === 'canceled' ? h('div', { class: 'error row wrap', role: 'alert' },
        h('span', {}, why || t('This version was not finished.')),
        h('button', { type: 'button', class: 'small', onclick: () => change('POST', '/retry') }, t('Retry'))) : null);
    bar.set(v.status === 'ready' ? 1 : done / STEPS.length, v.status === 'ready' ? t('Ready') : t('{done} of {total} steps', { done, total: STEPS.length }));
    const o = v.outputs || {};
    const dl = (label, href, name) => h('button', { type: 'button', onclick: () => download(href, name).catch((e) => toast(e.message, 'error')) }, label);
    put(downloads,
      o.sheet_pdf ? h('a', { class: 'button', href: local(o.sheet_pdf), target: '_blank', rel: 'noopener' }, t('Sheet (PDF)')) : null,
      o.sheet_png ? h('a', { class: 'button', href: local(o.sheet_png), target: '_blank', rel: 'noopener' }, t('Sheet (PNG)')) : null,
      Object.entries(o.animatic || {}).map(([fmt, href]) => h('a', { class: 'button', href: local(href), target: '_blank', rel: 'noopener' }, `${t('Animatic')} (${fmt.toUpperCase()})`)),
      v.status === 'ready' ? dl(t('Download ZIP'), `${url}/export.zip?version=${v.version}`, `storyboard-${id}-v${v.version}.zip`) : null);
    put(grid, v.cuts.map((c) => cutCard(c, v)));
    const vs = await get(`${url}/versions`);
    put(versions, vs.data.slice().reverse().map((x) => h('li', { class: x.current ? 'current' : '' },
      h('span', {}, `v${x.version} · ${describe(x.action)} · `, badge(x.status, t(x.status)), ` · ${x.cuts} ${t('cuts')} · ${t('{s} s', { s: Math.round(x.duration_s * 10) / 10 })}`),
      x.current ? h('small', { class: 'muted' }, ` ${t('current')}`) : h('button', { type: 'button', class: 'small', onclick: () => change('POST', `/versions/${x.version}/restore`) }, t('Restore')))));
    if (openComments) showComments(openComments);
    return BUSY.has(v.status);
  }

  function cutCard(c, v) {
    const n = c.number;
    const last = v.cuts.length;
    const img = c.image
      ? h('img', { src: local(c.image.file), alt: c.scene, width: c.image.width, height: c.image.height, class: 'cut-image', dataset: { cut: c.id } })
      : h('div', { class: 'cut-pending' }, BUSY.has(v.status) ? t('Drawing…') : t('No picture'));
    const editForm = h('form', { class: 'stack', hidden: true },
      field(t('Scene'), h('textarea', { name: 'scene', rows: 2, maxlength: 150, value: c.scene })),
      field(t('Camera'), h('input', { name: 'camera', maxlength: 60, value: c.camera })),
      field(t('Copy'), h('input', { name: 'copy', maxlength: 80, value: c.copy })),
      field(t('Seconds'), h('input', { type: 'number', name: 'duration_s', min: 0.5, max: 15, step: 0.5, value: c.duration_s })),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('Save cut')),
        h('button', { type: 'button', class: 'ghost', onclick: () => { editForm.hidden = true; } }, t('Close'))));
    editForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const d = formData(editForm);
      const body = {};
      for (const k of ['scene', 'camera', 'copy', 'duration_s']) if (d[k] !== undefined && d[k] !== c[k]) body[k] = d[k];
      if (!Object.keys(body).length) { editForm.hidden = true; return; }
      change('PATCH', `/cuts/${c.id}`, body);
    });
    const li = h('li', { class: 'card cut', draggable: 'true', dataset: { cut: c.id, number: String(n) } },
      h('div', { class: 'cut-head row spread' }, h('strong', {}, `#${n}`), h('span', { class: 'muted' }, `${c.duration_s} s`)),
      img,
      h('p', { class: 'scene' }, c.scene),
      h('p', { class: 'muted' }, c.camera),
      h('p', { class: 'copy' }, c.copy),
      h('div', { class: 'row wrap' },
        h('button', { type: 'button', class: 'small', disabled: n === 1, 'aria-label': t('Move cut {n} earlier', { n }), onclick: () => change('POST', `/cuts/${c.id}/move`, { to: n - 1 }) }, '←'),
        h('button', { type: 'button', class: 'small', disabled: n === last, 'aria-label': t('Move cut {n} later', { n }), onclick: () => change('POST', `/cuts/${c.id}/move`, { to: n + 1 }) }, '→'),
        h('button', { type: 'button', class: 'small', onclick: () => { editForm.hidden = !editForm.hidden; } }, t('Edit')),
        h('button', { type: 'button', class: 'small', onclick: () => change('POST', `/cuts/${c.id}/regenerate`) }, t('Regenerate')),
        h('button', { type: 'button', class: 'small', onclick: () => { openComments = c.id; showComments(c.id); } }, t('Comments')),
        h('button', { type: 'button', class: 'small danger', disabled: last <= 4, 'aria-label': t('Delete cut {n}', { n }), onclick: () => change('DELETE', `/cuts/${c.id}`) }, t('Delete'))),
      editForm);
    li.addEventListener('dragstart', (ev) => { ev.dataTransfer.setData('text/plain', c.id); li.classList.add('dragging'); });
    li.addEventListener('dragend', () => li.classList.remove('dragging'));
    li.addEventListener('dragover', (ev) => { ev.preventDefault(); li.classList.add('drop'); });
    li.addEventListener('dragleave', () => li.classList.remove('drop'));
    li.addEventListener('drop', (ev) => {
      ev.preventDefault();
      li.classList.remove('drop');
      const from = ev.dataTransfer.getData('text/plain');
      if (from && from !== c.id) change('POST', `/cuts/${from}/move`, { to: n });
    });
    return li;
  }

  async function showComments(cutId) {
    const cut = board.current.cuts.find((c) => c.id === cutId);
    if (!cut) { commentBox.hidden = true; openComments = null; return; }
    const { data } = await get(`${url}/comments?cut=${encodeURIComponent(cutId)}`);
    const err = h('div', { class: 'error', role: 'alert', hidden: true });
    const form = h('form', { class: 'stack' },
      field(t('Your name'), h('input', { name: 'author', required: true, maxlength: 50, value: localStorage.getItem('atelier.author') || '' })),
      field(t('Comment'), h('textarea', { name: 'text', rows: 2, required: true, maxlength: 1000 })),
      err, h('button', { type: 'submit', class: 'primary' }, t('Add comment')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      showError(err, null, form);
      const d = formData(form);
      localStorage.setItem('atelier.author', d.author);
      try {
        await post(`${url}/cuts/${cutId}/comments`, { author: d.author, text: d.text, version: board.head });
        showComments(cutId);
      } catch (e) { showError(err, e, form); }
    });
    commentBox.hidden = false;
    put(commentBox,
      h('div', { class: 'row spread' }, h('h2', {}, t('Comments on cut {n}', { n: cut.number })),
        h('button', { type: 'button', class: 'ghost', onclick: () => { commentBox.hidden = true; openComments = null; } }, t('Close'))),
      h('ol', { class: 'comments' }, data.length ? data.map((c) => h('li', { class: `comment${c.resolved_at ? ' resolved' : ''}` },
        h('div', {}, h('strong', {}, c.author), h('small', { class: 'muted' }, ` v${c.version} · ${fmtTime(c.created_at)}`),
          h('p', {}, c.text),
          c.resolved_at ? h('small', { class: 'muted' }, t('Resolved by {who}', { who: c.resolved_by || '' }))
            : h('button', { type: 'button', class: 'small', onclick: async () => {
              await post(`${url}/comments/${c.id}/resolve`, { by: localStorage.getItem('atelier.author') || 'reviewer' });
              showComments(cutId);
            } }, t('Resolve'))))) : h('li', { class: 'muted' }, t('No comments yet.'))),
      form);
  }

  // One poll at a time follows the board while a version is being drawn; `again` makes it read
  // once more after a save that raced with its last read.
  let stopFollowing = null;
  let again = false;
  function follow() {
    again = true;
    if (stopFollowing) return;
    stopFollowing = poll(async () => {
      again = false;
      if ((await load()) || again) return true;
      stopFollowing = null;
      return false;
    }, 1000);
  }
  follow();
  return () => { if (stopFollowing) stopFollowing(); };
}
