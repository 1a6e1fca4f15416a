// Diary toons: sign up / log in, write a diary post and watch its comic being drawn, the lounge
// feed with the Hot TOONs strip, and a post page with comments, likes, recommendations and report.
import { h, put, field, select, formData, progressBar, showError, fmtTime, toast } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { auth, get, post, api, poll } from '../lib/api.js';

const STEPS = 9;

async function session() {
  const s = await get('/v1/diary/session');
  auth.csrf = s.csrf_token || '';
  return s.user;
}

export async function mount(main, params, ctx) {
  const user = await session();
  if (params[0] === 'p' && params[1]) return postPage(main, params[1], user);
  return loungePage(main, user, ctx);
}

function authPanel(user) {
  if (user) {
    return h('section', { class: 'card row spread', 'aria-label': t('Account') },
      h('p', { class: 'row' }, h('img', { src: user.avatar_url, alt: '', class: 'avatar', width: 32, height: 32 }),
        t('Signed in as {name}', { name: user.display_name })),
      h('button', { type: 'button', onclick: async () => {
        await post('/v1/diary/logout');
        auth.csrf = '';
        location.reload();
      } }, t('Log out')));
  }
  const err = h('div', { class: 'error', role: 'alert', hidden: true });
  let mode = 'login';
  const nameField = field(t('Display name'), h('input', { name: 'display_name', maxlength: 30, autocomplete: 'nickname' }));
  nameField.hidden = true;
  const submit = h('button', { type: 'submit', class: 'primary' }, t('Log in'));
  const toggle = h('button', { type: 'button', class: 'ghost' }, t('New here? Sign up'));
  const title = h('h2', { id: 'auth-title' }, t('Log in'));
  const form = h('form', { class: 'card stack', 'aria-labelledby': 'auth-title' }, title,
    field(t('Email'), h('input', { type: 'email', name: 'email', required: true, autocomplete: 'email' })),
    field(t('Password'), h('input', { type: 'password', name: 'password', required: true, minlength: 8, autocomplete: 'current-password' }), t('At least 8 characters')),
    nameField, err, h('div', { class: 'row' }, submit, toggle));
  toggle.addEventListener('click', () => {
    mode = mode === 'login' ? 'signup' : 'login';
    nameField.hidden = mode === 'login';
    nameField.querySelector('input').required = mode === 'signup';
    put(title, mode === 'login' ? t('Log in') : t('Sign up'));
    put(submit, mode === 'login' ? t('Log in') : t('Sign up'));
    put(toggle, mode === 'login' ? t('New here? Sign up') : t('Have an account? Log in'));
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null, form);
    try {
      const s = await post(`/v1/diary/${mode}`, formData(form));
      auth.csrf = s.csrf_token || '';
      location.reload();
    } catch (e) { showError(err, e, form); }
  });
  return form;
}

/** The comic's title, else the diary's first words. */
function titleOf(p) {
  if (p.title) return p.title;
  const words = (p.text || '').trim().split(/\s+/).slice(0, 6).join(' ');
  return words || t('Untitled');
}

function card(p, extra) {
  return h('li', { class: 'card post-card' },
    h('a', { href: `#/lounge/p/${p.id}`, class: 'post-link' },
      p.comic ? h('img', { src: p.comic.grid_url, alt: t('Comic: {title}', { title: titleOf(p) }), loading: 'lazy', class: 'comic-thumb' }) : null,
      h('strong', {}, titleOf(p))),
    h('p', { class: 'muted' }, `${p.author.display_name} · ${t('{n} comments', { n: p.comment_count })} · ${t('{n} likes', { n: p.like_count })}`, extra || ''));
}

async function loungePage(main, user, ctx) {
  const stops = [];
  const hot = h('ol', { class: 'strip', 'aria-label': t('Hot TOONs') });
  const feed = h('ul', { class: 'feed' });
  const more = h('button', { type: 'button', hidden: true }, t('Load more'));
  let cursor = null;

  let writer = null;
  if (user) {
    const needCaptions = !(ctx.system && ctx.system.llm);
    const err = h('div', { class: 'error', role: 'alert', hidden: true });
    const caps = [1, 2, 3, 4].map((n) => field(t('Panel {n} caption', { n }), h('input', { name: `caption${n}`, maxlength: 100, required: needCaptions })));
    const watch = h('div', { class: 'stack', 'aria-live': 'polite', id: 'post-run' });
    writer = h('form', { class: 'card stack', 'aria-labelledby': 'write-title' },
      h('h2', { id: 'write-title' }, t('Write today’s diary')),
      field(t('Diary'), h('textarea', { name: 'text', rows: 4, required: true, maxlength: 2000 })),
      h('div', { class: 'grid2' },
        field(t('Visibility'), select('visibility', [['public', t('Public')], ['private', t('Only me')]], 'public')),
        field(t('Drawing style'), h('input', { name: 'style', maxlength: 200 }))),
      h('fieldset', {}, h('legend', {}, needCaptions ? t('Panel captions (no language model is configured)') : t('Panel captions (optional)')),
        h('div', { class: 'grid2' }, caps)),
      err, h('button', { type: 'submit', class: 'primary' }, t('Post and draw')), watch);
    writer.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      showError(err, null, writer);
      const d = formData(writer);
      const body = { text: d.text, visibility: d.visibility };
      if (d.style) body.style = d.style;
      const c = [d.caption1, d.caption2, d.caption3, d.caption4];
      if (c.every(Boolean)) body.captions = c;
      put(watch);
      try {
        const p = await post('/v1/diary/posts', body);
        const bar = progressBar(t('Comic progress'));
        const state = h('p', {});
        put(watch, h('h3', {}, t('Drawing your comic')), bar, state);
        stops.push(poll(async () => {
          const cur = await get(`/v1/diary/posts/${p.id}`);
          const done = (cur.steps || []).filter((s) => s.status === 'done').length;
          bar.set(done / STEPS, t('{done} of {total} steps', { done, total: STEPS }));
          if (cur.status === 'failed') { state.textContent = `${t('failed')}: ${((cur.steps || []).find((s) => s.error) || {}).error?.message || ''}`; return false; }
          if (cur.comic) {
            bar.set(1, t('Done'));
            put(state, h('a', { href: `#/lounge/p/${p.id}` }, t('Open your post')));
            loadFeed(true);
            return false;
          }
          return true;
        }, 800));
        writer.reset();
      } catch (e) { showError(err, e, writer); }
    });
  }

  async function loadFeed(reset) {
    if (reset) cursor = null;
    const q = new URLSearchParams({ limit: '12' });
    if (cursor) q.set('cursor', cursor);
    const page = await get(`/v1/diary/lounge?${q}`);
    const items = page.posts.map((p) => card(p));
    if (reset) put(feed, items.length ? items : h('li', { class: 'muted' }, t('No posts yet. Write the first one!')));
    else feed.append(...items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const hp = await get('/v1/diary/hot');
    put(hot, hp.posts.length ? hp.posts.map((p, i) => card(p, ` · #${i + 1} ${t('{n} new comments', { n: p.recent_comments })}`))
      : h('li', { class: 'muted' }, t('No hot toons this week yet.')));
  }
  more.addEventListener('click', () => loadFeed(false));

  put(main, h('h1', {}, t('Diary lounge')), authPanel(user), writer,
    h('section', { 'aria-labelledby': 'hot-title' }, h('h2', { id: 'hot-title' }, t('Hot TOONs')), hot),
    h('section', { 'aria-labelledby': 'feed-title' }, h('h2', { id: 'feed-title' }, t('Newest')), feed, more));
  await loadFeed(true);
  return () => stops.forEach((s) => s());
}

async function postPage(main, id, user) {
  const p = await get(`/v1/diary/posts/${encodeURIComponent(id)}`);
  const comments = h('ol', { class: 'comments', 'aria-label': t('Comments') });
  const recs = h('ul', { class: 'feed' });
  const likes = h('span', { class: 'likes' }, t('{n} likes', { n: p.like_count }));
  let liked = false;
  const likeBtn = h('button', { type: 'button', 'aria-pressed': 'false', disabled: !user }, t('Like'));
  likeBtn.addEventListener('click', async () => {
    try {
      const r = await api(liked ? 'DELETE' : 'PUT', `/v1/diary/posts/${id}/like`);
      liked = r.liked;
      likeBtn.setAttribute('aria-pressed', String(liked));
      put(likeBtn, liked ? t('Unlike') : t('Like'));
      put(likes, t('{n} likes', { n: r.like_count }));
    } catch (e) { toast(e.message, 'error'); }
  });
  const reportBtn = h('button', { type: 'button', class: 'ghost', disabled: !user }, t('Report'));
  const reportForm = h('form', { class: 'row', hidden: true },
    h('label', { for: 'report-reason' }, t('Reason')), h('input', { id: 'report-reason', name: 'reason', maxlength: 500 }),
    h('button', { type: 'submit' }, t('Send report')));
  reportBtn.addEventListener('click', () => { reportForm.hidden = !reportForm.hidden; });
  reportForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post('/v1/diary/reports', { kind: 'post', id, reason: reportForm.elements.reason.value });
      reportForm.hidden = true;
      toast(t('Thanks: the moderators will look at it'));
    } catch (e) { toast(e.message, 'error'); }
  });

  const cErr = h('div', { class: 'error', role: 'alert', hidden: true });
  const cForm = user ? h('form', { class: 'stack' },
    field(t('Comment'), h('textarea', { name: 'text', rows: 2, required: true, maxlength: 500 })), cErr,
    h('button', { type: 'submit', class: 'primary' }, t('Add comment'))) : h('p', { class: 'muted' }, h('a', { href: '#/lounge' }, t('Log in to comment')));
  if (user) {
    cForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      showError(cErr, null, cForm);
      try {
        await post(`/v1/diary/posts/${id}/comments`, { text: cForm.elements.text.value });
        cForm.reset();
        loadComments();
      } catch (e) { showError(cErr, e, cForm); }
    });
  }

  async function loadComments() {
    const { comments: cs } = await get(`/v1/diary/posts/${id}/comments?limit=100`);
    put(comments, cs.length ? cs.map((c) => h('li', { class: 'comment' },
      h('img', { src: c.author.avatar_url, alt: '', class: 'avatar', width: 28, height: 28 }),
      h('div', {}, h('strong', {}, c.author.display_name), h('small', { class: 'muted' }, ` ${fmtTime(c.created_at)}`), h('p', {}, c.text))))
      : h('li', { class: 'muted' }, t('No comments yet.')));
  }

  put(main, h('p', {}, h('a', { href: '#/lounge' }, `← ${t('Lounge')}`)),
    h('article', { class: 'card stack post' },
      h('h1', {}, titleOf(p)),
      h('p', { class: 'muted' }, `${p.author.display_name} · ${fmtTime(p.created_at)}`),
      p.comic ? h('img', { src: p.comic.grid_url, alt: t('Comic: {title}', { title: titleOf(p) }), class: 'comic' })
        : h('p', { class: 'muted' }, t('The comic is still being drawn.')),
      h('p', { class: 'diary-text' }, p.text),
      h('div', { class: 'row' }, likeBtn, likes, reportBtn), reportForm),
    h('section', { class: 'card stack', 'aria-labelledby': 'c-title' }, h('h2', { id: 'c-title' }, t('Comments')), comments, cForm),
    h('section', { 'aria-labelledby': 'r-title' }, h('h2', { id: 'r-title' }, t('You may also like')), recs));
  await loadComments();
  if (p.listed !== false && p.comic) {
    const r = await get(`/v1/diary/posts/${id}/recommended?k=4`);
    put(recs, r.posts.length ? r.posts.map((x) => card(x)) : h('li', { class: 'muted' }, t('Nothing similar yet.')));
  }
}
