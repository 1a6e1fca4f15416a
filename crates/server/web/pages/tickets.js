// Photo-ticket campaigns: create and edit a campaign, make one ticket with live progress, run a
// CSV batch and watch it, download the ZIP, open share pages.
import { h, put, field, select, formData, progressBar, showError, badge, fmtTime, toast } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { get, post, api, stream, download, poll, local } from '../lib/api.js';

/** A ticket step in words. */
function stepName(step) {
  const names = {
    screen_text: t('text check'), copy: t('title and tagline'), screen_copy: t('copy check'),
    image: t('picture'), screen_image: t('picture check'), preset: t('layout'), render: t('render'),
    mark: t('watermark and provenance'), publish: t('publish'),
  };
  return names[step] || step;
}

export async function mount(main, params, ctx) {
  if (params[0]) return campaignPage(main, params[0], ctx);
  return listPage(main, ctx);
}

/** The fields shared by the create and edit forms. */
function campaignFields(c, models, ctx) {
  const g = c.generation || {};
  const copyDefault = c.copy || (ctx.system && ctx.system.llm ? 'llm' : 'supplied');
  return [
    h('div', { class: 'grid2' },
      field(t('Campaign name'), h('input', { name: 'name', required: true, maxlength: 100, value: c.name || '' })),
      field(t('Brand'), h('input', { name: 'brand', required: true, maxlength: 100, value: c.brand || '' }))),
    field(t('Style prompt'), h('input', { name: 'style_prompt', maxlength: 500, value: c.style_prompt || '' }), t('Added to every picture’s prompt')),
    field(t('Negative prompt'), h('input', { name: 'negative_prompt', maxlength: 500, value: c.negative_prompt || '' })),
    h('div', { class: 'grid3' },
      field(t('Model'), select('model', [['', t('Server default')], ...models.map((m) => [m.id, m.id])], g.model)),
      field(t('Steps'), h('input', { type: 'number', name: 'steps', min: 1, max: 150, value: g.steps ?? '' })),
      field(t('Primary colour'), h('input', { type: 'color', name: 'primary', value: (c.palette && c.palette.primary) || '#1f4e79' }))),
    field(t('Title and tagline'), select('copy', [['llm', t('Written by the language model')], ['supplied', t('Supplied with each ticket')]], copyDefault),
      ctx.system && !ctx.system.llm ? t('No language model is configured: each ticket must bring its title and tagline.') : null),
  ];
}

/** The form as a new campaign, or (`patch`) as a JSON merge patch where an emptied field
 * goes back to its default (null removes it). Fields the form does not show are kept. */
function campaignBody(form, patch) {
  const d = formData(form);
  const body = { name: d.name, brand: d.brand, copy: d.copy, palette: { primary: d.primary } };
  body.style_prompt = d.style_prompt ?? '';
  body.negative_prompt = d.negative_prompt ?? '';
  const gen = {};
  if (d.model || patch) gen.model = d.model || null;
  if (d.steps || patch) gen.steps = d.steps || null;
  body.generation = gen;
  return body;
}

async function listPage(main, ctx) {
  const models = (await get('/v1/models')).data.filter((m) => m.type !== 'llm');
  const list = h('ul', { class: 'cards', 'aria-label': t('Campaigns') });
  const err = h('div', { class: 'error', role: 'alert', hidden: true });
  const form = h('form', { class: 'card stack', 'aria-labelledby': 'new-campaign' },
    h('h2', { id: 'new-campaign' }, t('New campaign')), ...campaignFields({}, models, ctx), err,
    h('button', { type: 'submit', class: 'primary' }, t('Create campaign')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null, form);
    try {
      const c = await post('/v1/campaigns', campaignBody(form));
      location.hash = `#/tickets/${c.id}`;
    } catch (e) { showError(err, e, form); }
  });
  put(main, h('h1', {}, t('Campaigns and tickets')), h('div', { class: 'split' },
    h('section', { 'aria-labelledby': 'camp-list' }, h('h2', { id: 'camp-list' }, t('Campaigns')), list), form));
  const { data } = await get('/v1/campaigns');
  put(list, data.length ? data.map((c) => h('li', { class: 'card' },
    h('h3', {}, h('a', { href: `#/tickets/${c.id}` }, c.name)),
    h('p', { class: 'muted' }, `${c.brand} · v${c.version} · ${fmtTime(c.updated_at)}`))) : h('li', { class: 'muted' }, t('No campaigns yet.')));
}

async function campaignPage(main, id, ctx) {
  const abort = new AbortController();
  const stops = [];
  const models = (await get('/v1/models')).data.filter((m) => m.type !== 'llm');
  let campaign = await get(`/v1/campaigns/${encodeURIComponent(id)}`);
  const heading = h('h1', {});
  const meta = h('p', { class: 'muted' });
  const showHead = () => {
    put(heading, campaign.name);
    put(meta, `${campaign.brand} · ${t('version {n}', { n: campaign.version })}`);
  };
  showHead();

  // Edit.
  const editErr = h('div', { class: 'error', role: 'alert', hidden: true });
  const edit = h('form', { class: 'stack' }, ...campaignFields(campaign, models, ctx), editErr,
    h('button', { type: 'submit' }, t('Save campaign')));
  edit.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(editErr, null, edit);
    try {
      campaign = await api('PATCH', `/v1/campaigns/${id}`, campaignBody(edit, true));
      showHead();
      toast(t('Saved as version {n}', { n: campaign.version }));
    } catch (e) { showError(editErr, e, edit); }
  });

  // One ticket.
  const supplied = campaign.copy === 'supplied';
  const tErr = h('div', { class: 'error', role: 'alert', hidden: true });
  const one = h('form', { class: 'card stack', 'aria-labelledby': 'one-ticket' },
    h('h2', { id: 'one-ticket' }, t('Make a ticket')),
    field(t('Customer name'), h('input', { name: 'name', required: true, maxlength: 50 })),
    field(t('Their story'), h('textarea', { name: 'text', required: true, rows: 3, maxlength: 2000 })),
    h('div', { class: 'grid2' },
      field(t('Title'), h('input', { name: 'title', maxlength: 20, required: supplied })),
      field(t('Tagline'), h('input', { name: 'tagline', maxlength: 40, required: supplied }))),
    tErr, h('button', { type: 'submit', class: 'primary' }, t('Make ticket')));
  const current = h('section', { class: 'card stack', hidden: true, 'aria-live': 'polite', id: 'ticket-run' });
  one.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(tErr, null, one);
    try {
      const job = await post(`/v1/campaigns/${id}/tickets`, formData(one));
      await follow(job.id);
      refreshTickets();
    } catch (e) { if (e.name !== 'AbortError') showError(tErr, e, one); }
  });

  async function follow(ticketId) {
    current.hidden = false;
    const bar = progressBar(t('Ticket progress'));
    const steps = h('ol', { class: 'steps' });
    const result = h('div', {});
    put(current, h('h2', {}, t('Ticket')), bar, steps, result);
    const showSteps = async () => {
      const tk = await get(`/v1/tickets/${ticketId}`, { signal: abort.signal });
      put(steps, (tk.steps || []).map((s) => h('li', { class: `step ${s.status}` }, `${stepName(s.step)} · ${s.ms} ms`)));
      return tk;
    };
    await stream(`/v1/predictions/${ticketId}/stream`, (ev) => {
      if (ev.event === 'progress') bar.set(ev.data.fraction, ev.data.total ? t('Step {step} of {total}', ev.data) : null);
      if (ev.event === 'logs' || ev.event === 'status') showSteps().catch(() => {});
    }, abort.signal);
    const tk = await showSteps();
    const job = await get(`/v1/predictions/${ticketId}`, { signal: abort.signal });
    if (job.status === 'succeeded' && tk.file) {
      bar.set(1, t('Done'));
      put(result, h('figure', { class: 'ticket' },
        h('img', { src: local(tk.file), alt: `${tk.title || ''} ${tk.tagline || ''}`.trim() || t('Ticket'), class: 'ticket-image' }),
        h('figcaption', {}, h('strong', {}, tk.title || ''), ' ', tk.tagline || '')),
      h('div', { class: 'row' },
        h('a', { class: 'button', href: local(tk.share_url), target: '_blank', rel: 'noopener' }, t('Open share page')),
        h('button', { type: 'button', onclick: () => download(tk.file, `ticket-${ticketId}.png`).catch((e) => toast(e.message, 'error')) }, t('Download'))));
    } else {
      put(result, h('p', { class: 'error' }, `${t(job.status)}: ${job.error || ''}`));
    }
  }

  // CSV batch.
  const file = h('input', { type: 'file', name: 'csv', accept: '.csv,text/csv', required: true });
  const bErr = h('div', { class: 'error', role: 'alert', hidden: true });
  const batchBox = h('div', { class: 'stack', 'aria-live': 'polite', id: 'batch-run' });
  const batch = h('form', { class: 'card stack', 'aria-labelledby': 'batch-title' },
    h('h2', { id: 'batch-title' }, t('Batch from a CSV')),
    field(t('CSV file'), file, t('Columns: name, text (and title, tagline when the campaign supplies copy). UTF-8 or Excel’s Korean encoding.')),
    bErr, h('button', { type: 'submit' }, t('Upload and start')), batchBox);
  batch.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(bErr, null, batch);
    const f = file.files[0];
    if (!f) return;
    try {
      const b = await api('POST', `/v1/campaigns/${id}/batches?filename=${encodeURIComponent(f.name)}`, new Blob([await f.arrayBuffer()], { type: 'text/csv' }));
      watchBatch(b.id);
    } catch (e) { showError(bErr, e, batch); }
  });

  function watchBatch(batchId) {
    const bar = progressBar(t('Batch progress'));
    const counts = h('p', {});
    const errors = h('ul', { class: 'errors' });
    const links = h('div', { class: 'row' });
    put(batchBox, bar, counts, errors, links);
    stops.push(poll(async () => {
      const b = await get(`/v1/batches/${batchId}`, { signal: abort.signal });
      const finished = b.done + b.failed;
      bar.set(b.total ? finished / b.total : 0, t('{done} of {total} done · {failed} failed', { done: b.done, total: b.total, failed: b.failed }));
      put(counts, t('Pending: {n}', { n: b.pending }), b.eta_s != null && b.pending ? ` · ${t('{s} s left', { s: Math.ceil(b.eta_s) })}` : '');
      put(errors, (b.errors || []).map((e) => h('li', {}, t('Line {line}: {reason}', { line: e.line, reason: e.reason || e.code }))));
      const over = b.pending === 0 || ['succeeded', 'failed', 'canceled'].includes(b.job_status);
      if (over) {
        put(links,
          h('button', { type: 'button', class: 'primary', onclick: () => download(b.urls.zip, `tickets-${batchId}.zip`).catch((e) => toast(e.message, 'error')) }, t('Download ZIP')),
          h('button', { type: 'button', onclick: () => download(b.urls.links, `links-${batchId}.csv`).catch((e) => toast(e.message, 'error')) }, t('Download links CSV')));
        refreshTickets();
      }
      return !over;
    }, 1000));
  }

  // Tickets so far.
  const list = h('ul', { class: 'tickets', 'aria-label': t('Tickets') });
  async function refreshTickets() {
    const { data } = await get(`/v1/campaigns/${id}/tickets?limit=50`, { signal: abort.signal });
    put(list, data.length ? data.map((tk) => h('li', { class: 'card' },
      tk.file ? h('img', { src: local(tk.file), alt: tk.title || t('Ticket'), loading: 'lazy' }) : null,
      h('p', {}, badge(tk.status, t(tk.status)), ' ', h('strong', {}, tk.title || '')),
      tk.share_url && tk.status === 'ready' && !tk.revoked ? h('a', { href: local(tk.share_url), target: '_blank', rel: 'noopener' }, t('Share page')) : null))
      : h('li', { class: 'muted' }, t('No tickets yet.')));
  }

  put(main, h('p', {}, h('a', { href: '#/tickets' }, `← ${t('Campaigns')}`)), heading, meta,
    h('details', { class: 'card' }, h('summary', {}, t('Edit campaign')), edit),
    h('div', { class: 'split' }, h('div', { class: 'stack' }, one, current), batch),
    h('section', { 'aria-labelledby': 'tk-list' }, h('h2', { id: 'tk-list' }, t('Tickets')), list));
  refreshTickets();
  return () => { abort.abort(); stops.forEach((s) => s()); };
}
