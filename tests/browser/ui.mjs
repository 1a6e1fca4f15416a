// Browser tests of atelier's web UI: one flow per page in Debian's chromium (playwright-core),
// against a running server with the tiny fixture models. Each flow asserts what a person would
// see (images that load at the requested size, progress that advances, comments that appear),
// then every page is checked with axe-core at desktop and phone width and screenshotted.
// Any console error or uncaught exception fails the run.
//
//   node ui.mjs --base http://127.0.0.1:PORT --out SCREENSHOT_DIR [--work DIR] [--chromium /usr/bin/chromium]
//               [--only page,page] [--pull-repo owner/name]
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const base = args.base;
const out = args.out || 'screenshots';
const only = args.only ? new Set(args.only.split(',')) : null;
const repo = args['pull-repo'] || 'atelier-test/sd15-pulled';
const work = args.work || mkdtempSync(join(tmpdir(), 'atelier-ui-'));
mkdirSync(out, { recursive: true });
mkdirSync(work, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TIMEOUT = 120_000;

const browser = await chromium.launch({
  executablePath: args.chromium || process.env.ATELIER_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const problems = [];
const report = [];
function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${label} console: ${m.text()} (${page.url()})`); });
  page.on('pageerror', (e) => problems.push(`${label} exception: ${e.message} (${page.url()})`));
}
const desktop = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', acceptDownloads: true });
const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'ko-KR', isMobile: true, hasTouch: true });
desktop.setDefaultTimeout(TIMEOUT);
phone.setDefaultTimeout(TIMEOUT);
const page = await desktop.newPage();
watch(page, 'desktop');
const small = await phone.newPage();
watch(small, 'phone');

async function axe(p, label) {
  await p.evaluate(axeSource);
  const r = await p.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const res = await axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, target: v.nodes[0] && v.nodes[0].target.join(' ') }));
  });
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) problems.push(`${label} axe: ${JSON.stringify(bad)}`);
  return { violations: r.length, serious_or_critical: bad.length, minor: r.filter((v) => !bad.includes(v)).map((v) => `${v.id}(${v.impact})`) };
}

/** Screenshots and axe at desktop, then the same route on the phone (Korean). */
async function finish(name, route, phoneReady) {
  const a = await axe(page, `${name} desktop`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${out}/${name}-desktop.png`, fullPage: true });
  await small.goto(`${base}/${route}`);
  await small.waitForSelector(phoneReady || 'main h1');
  await small.waitForTimeout(300);
  const overflow = await small.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
  if (overflow > 1) problems.push(`${name} phone: page is ${overflow}px wider than the screen`);
  const lang = await small.evaluate(() => document.documentElement.lang);
  assert.equal(lang, 'ko', 'a Korean browser gets the Korean UI');
  const b = await axe(small, `${name} phone`);
  await small.screenshot({ path: `${out}/${name}-phone.png` });
  return { axe_desktop: a, axe_phone: b, phone_overflow_px: Math.max(0, overflow) };
}

const natural = (loc) => loc.evaluate((img) => (img.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null));
async function loaded(loc) {
  await loc.waitFor();
  for (let i = 0; i < 200; i++) {
    const n = await natural(loc);
    if (n) return n;
    await page.waitForTimeout(100);
  }
  throw new Error('image did not load');
}
const apiPost = (path, body) => page.evaluate(async ([p, b]) => {
  const r = await fetch(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  return r.json();
}, [path, body]);

async function step(name, fn) {
  if (only && !only.has(name)) return;
  const t0 = Date.now();
  const before = problems.length;
  try {
    const facts = await fn();
    report.push({ page: name, ok: problems.length === before, ms: Date.now() - t0, ...facts });
  } catch (e) {
    problems.push(`${name}: ${e.stack || e.message}`);
    report.push({ page: name, ok: false, ms: Date.now() - t0, error: e.message });
    await page.screenshot({ path: `${work}/${name}-failure.png` }).catch(() => {});
  }
}

// --- Playground -------------------------------------------------------------------------------
await step('playground', async () => {
  await page.goto(`${base}/#/playground`);
  // A long job is canceled from the progress panel.
  await page.getByLabel('Prompt', { exact: true }).fill('a slow one');
  await page.getByLabel('Width').fill('512');
  await page.getByLabel('Height').fill('512');
  await page.getByLabel('Steps').fill('150');
  await page.getByRole('button', { name: 'Generate' }).click();
  await page.locator('#run').getByRole('button', { name: 'Cancel' }).click();
  await page.locator('#run .state', { hasText: 'Canceled' }).waitFor();
  await page.getByLabel('Prompt', { exact: true }).fill('a lighthouse at dusk, film photo');
  await page.getByLabel('Negative prompt').fill('blurry');
  await page.getByLabel('Width').fill('96');
  await page.getByLabel('Height').fill('64');
  await page.getByLabel('Steps').fill('8');
  await page.locator('#seed-input').fill('1234');
  await page.getByLabel('Lock').check();
  await page.getByLabel('Images').selectOption('2');
  await page.getByRole('button', { name: 'Generate' }).click();
  const imgs = page.locator('.result img');
  await imgs.nth(1).waitFor();
  const sizes = [await loaded(imgs.nth(0)), await loaded(imgs.nth(1))];
  for (const s of sizes) assert.deepEqual(s, [96, 64], 'the image has the requested natural size');
  const bar = page.locator('#run .progress');
  const updates = Number(await bar.getAttribute('data-updates'));
  const max = Number(await bar.getAttribute('data-max'));
  assert.ok(updates >= 3 && max === 1, `progress advanced (${updates} updates, max ${max})`);
  const seeds = await page.locator('.result .facts').allInnerTexts();
  assert.ok(seeds.some((s) => s.includes('1234')) && seeds.some((s) => s.includes('1235')), 'seeds 1234 and 1235 shown');
  // Reuse settings puts the second image's seed back into the form.
  await page.locator('.result').first().getByRole('button', { name: 'Reuse settings' }).click();
  const reused = await page.locator('#seed-input').inputValue();
  assert.ok(['1234', '1235'].includes(reused), `reused seed ${reused}`);
  return { images: sizes, progress_updates: updates, ...(await finish('playground', '#/playground')) };
});

// --- Jobs -------------------------------------------------------------------------------------
await step('jobs', async () => {
  await page.goto(`${base}/#/jobs`);
  await page.locator('tr[data-status="succeeded"]').first().waitFor();
  const long = await apiPost('/v1/models/atelier/text-to-image/predictions', { input: { prompt: 'a slow one', width: 512, height: 512, steps: 150 } });
  // Live update: the new job appears without a reload, then is canceled from its row.
  const row = page.locator(`tr[data-job="${long.id}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: 'Cancel' }).click();
  await page.locator(`tr[data-job="${long.id}"][data-status="canceled"]`).waitFor();
  await page.locator('#jobs-status').selectOption('succeeded');
  await page.waitForFunction(() => [...document.querySelectorAll('tbody tr[data-status]')].every((r) => r.dataset.status === 'succeeded'));
  const shown = await page.locator('tbody tr[data-status]').count();
  await page.locator('tbody tr[data-status="succeeded"]').first().getByRole('button', { name: 'Open' }).click();
  const thumb = await loaded(page.locator('#job-detail .thumbs img').first());
  await page.locator('#jobs-status').selectOption('');
  return { succeeded_rows: shown, opened_thumbnail: thumb, ...(await finish('jobs', '#/jobs', 'tbody tr')) };
});

// --- Campaigns and tickets ----------------------------------------------------------------------
await step('tickets', async () => {
  await page.goto(`${base}/#/tickets`);
  await page.getByLabel('Campaign name').fill('봄 캠페인');
  await page.getByLabel('Brand').fill('한빛생명');
  await page.getByLabel('Style prompt').fill('cinematic film still, warm light');
  await page.getByLabel('Steps').fill('2');
  await page.getByLabel('Title and tagline').selectOption('supplied');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  await page.locator('h1', { hasText: '봄 캠페인' }).waitFor();
  // Edit: a new version.
  await page.getByText('Edit campaign').click();
  await page.locator('details').getByLabel('Campaign name').fill('봄 캠페인 2026');
  await page.getByRole('button', { name: 'Save campaign' }).click();
  await page.locator('main > p.muted', { hasText: 'version 2' }).waitFor();
  await page.getByText('Edit campaign').click();
  // One ticket with live progress.
  await page.getByLabel('Customer name').fill('김하늘');
  await page.getByLabel('Their story').fill('주말마다 아이들과 한강에서 자전거를 타요.');
  await page.getByLabel('Title', { exact: true }).fill('한강의 주말');
  await page.getByLabel('Tagline', { exact: true }).fill('페달을 밟을 때마다 웃음이');
  await page.getByRole('button', { name: 'Make ticket' }).click();
  const ticket = await loaded(page.locator('#ticket-run .ticket-image'));
  const tbar = page.locator('#ticket-run .progress');
  assert.equal(Number(await tbar.getAttribute('data-max')), 1, 'ticket progress reached 100%');
  const share = await page.getByRole('link', { name: 'Open share page' }).getAttribute('href');
  // The share page is public and shows the ticket.
  const sharePage = await desktop.newPage();
  watch(sharePage, 'share');
  await sharePage.goto(`${base}${share}`);
  const shareImg = await sharePage.locator('img').first().evaluate(async (img) => { await img.decode(); return [img.naturalWidth, img.naturalHeight]; });
  assert.ok(shareImg[0] > 0, 'share page image loads');
  const shareAxe = await axe(sharePage, 'share page');
  await sharePage.close();
  // A CSV batch with one duplicate row, watched to the end, then the ZIP.
  const csv = 'name,text,title,tagline\n이서연,퇴근 후 요가로 하루를 정리해요.,요가의 밤,숨을 고르는 시간\n박지훈,주말엔 캠핑을 떠나요.,별빛 캠핑,불멍의 밤\n박지훈,주말엔 캠핑을 떠나요.,별빛 캠핑,불멍의 밤\n';
  await page.getByLabel('CSV file').setInputFiles({ name: 'customers.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.getByRole('button', { name: 'Upload and start' }).click();
  const zipBtn = page.getByRole('button', { name: 'Download ZIP' });
  await zipBtn.waitFor();
  const batchText = await page.locator('#batch-run').innerText();
  assert.match(batchText, /2 of 3 done · 1 failed/, 'two tickets made, the duplicate refused');
  assert.match(batchText, /Line 4/, 'the duplicate is reported with its line');
  const [dl] = await Promise.all([page.waitForEvent('download'), zipBtn.click()]);
  const zipPath = `${work}/tickets.zip`;
  await dl.saveAs(zipPath);
  const zip = readFileSync(zipPath);
  assert.equal(zip.subarray(0, 2).toString(), 'PK', 'the download is a ZIP');
  await page.locator('.tickets img').nth(2).waitFor();
  return { ticket_image: ticket, share_image: shareImg, share_axe: shareAxe, zip_bytes: zip.length, ...(await finish('tickets', share ? page.url().replace(/^.*?#/, '#') : '#/tickets')) };
});

// --- Lounge -----------------------------------------------------------------------------------
await step('lounge', async () => {
  await page.goto(`${base}/#/lounge`);
  await page.getByRole('button', { name: 'New here? Sign up' }).click();
  await page.getByLabel('Email').fill('haneul@example.kr');
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByLabel('Display name').fill('하늘');
  await page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await page.getByText('Signed in as 하늘').waitFor();
  const write = async (text, caps) => {
    await page.getByLabel('Diary', { exact: true }).fill(text);
    for (let i = 0; i < 4; i++) await page.getByLabel(`Panel ${i + 1} caption`).fill(caps[i]);
    await page.getByRole('button', { name: 'Post and draw' }).click();
    // The progress bar of this post reaches 100% and offers the post.
    await page.locator('#post-run .progress[data-max="1"]').waitFor();
    await page.getByRole('link', { name: 'Open your post' }).waitFor();
    const updates = Number(await page.locator('#post-run .progress').getAttribute('data-updates'));
    assert.ok(updates >= 2, `comic progress advanced (${updates} updates)`);
  };
  await write('오늘 강아지와 한강 공원을 산책했다. 바람이 시원했다.', ['산책 시작', '한강 바람', '강아지 간식', '집으로']);
  await write('강아지가 공원에서 새 친구를 만났다. 산책이 즐거웠다.', ['공원 도착', '새 친구', '함께 뛰기', '피곤한 밤']);
  await page.getByRole('link', { name: 'Open your post' }).click();
  const comic = await loaded(page.locator('img.comic'));
  await page.getByLabel('Comment', { exact: true }).fill('귀여운 강아지네요!');
  await page.getByRole('button', { name: 'Add comment' }).click();
  await page.locator('.comments', { hasText: '귀여운 강아지네요!' }).waitFor();
  await page.getByRole('button', { name: 'Like' }).click();
  await page.getByText('1 likes').waitFor();
  await page.locator('section', { hasText: 'You may also like' }).locator('.post-card').first().waitFor();
  const recs = await page.locator('section', { hasText: 'You may also like' }).locator('.post-card').count();
  await page.getByRole('button', { name: 'Report', exact: true }).click();
  await page.getByLabel('Reason').fill('test report');
  await page.getByRole('button', { name: 'Send report' }).click();
  await page.getByText('Thanks: the moderators will look at it').waitFor();
  const postRoute = page.url().replace(/^.*?#/, '#');
  await page.goto(`${base}/#/lounge`);
  await page.locator('.feed .post-card').nth(1).waitFor();
  const hot = await page.locator('.strip .post-card').count();
  assert.ok(hot >= 1, 'the commented post is in Hot TOONs');
  await loaded(page.locator('.feed .post-card img').first());
  const feed = await page.locator('.feed .post-card').count();
  const facts = await finish('lounge', '#/lounge', '.feed .post-card');
  // The post page, screenshotted too.
  await page.goto(`${base}/${postRoute}`);
  await loaded(page.locator('img.comic'));
  const postFacts = await finish('lounge-post', postRoute, 'img.comic');
  return { comic, feed_posts: feed, hot_posts: hot, recommended: recs, ...facts, post_page: postFacts };
});

// --- Storyboard studio --------------------------------------------------------------------------
await step('storyboards', async () => {
  await page.goto(`${base}/#/storyboards`);
  await page.getByLabel('Product').fill('온기 텀블러');
  await page.getByLabel('Category').selectOption('home');
  await page.getByLabel('Brief').fill('하루 종일 따뜻한 텀블러, 바쁜 직장인에게');
  await page.getByLabel('Style').fill('soft film look');
  await page.locator('textarea[name="script"]').fill([
    '아침 출근길, 텀블러를 챙기는 손 | close-up | 하루의 시작을 따뜻하게 | 2',
    '사무실 책상 위 김이 나는 텀블러 | medium shot | 오후 세 시에도 그대로 | 2',
    '저녁 퇴근 버스 창가 | wide shot | 집에 가는 길까지 | 2',
    '제품 패키지와 로고 | product shot | 온기 텀블러 | 1.5',
  ].join('\n'));
  await page.getByRole('button', { name: 'Create storyboard' }).click();
  const ready = async (v) => {
    await page.locator('main h1 + p', { hasText: `version ${v}` }).waitFor();
    await page.locator('main h1 + p .badge.s-ready').waitFor();
  };
  await ready(1);
  const cuts = page.locator('.cuts > li');
  assert.equal(await cuts.count(), 4);
  const imgs = [];
  for (let i = 0; i < 4; i++) imgs.push(await loaded(cuts.nth(i).locator('img')));
  const srcs = async () => Promise.all([0, 1, 2, 3].map((i) => cuts.nth(i).locator('img').getAttribute('data-cut')));
  const order1 = await srcs();
  const picture = async (i) => (await cuts.nth(i).locator('img').getAttribute('src')).split('?')[0];
  const pics1 = await Promise.all([0, 1, 2, 3].map(picture));
  // Edit cut 2's copy: a new version, pictures kept.
  await cuts.nth(1).getByRole('button', { name: 'Edit' }).click();
  await cuts.nth(1).getByLabel('Copy').fill('오후에도 따뜻하게');
  await cuts.nth(1).getByRole('button', { name: 'Save cut' }).click();
  await ready(2);
  assert.match(await cuts.nth(1).innerText(), /오후에도 따뜻하게/);
  // Regenerate cut 3 only.
  await cuts.nth(2).getByRole('button', { name: 'Regenerate' }).click();
  await ready(3);
  await loaded(cuts.nth(2).locator('img'));
  const pics3 = await Promise.all([0, 1, 2, 3].map(picture));
  assert.notEqual(pics3[2], pics1[2], 'cut 3 has a new picture');
  // Reorder with a button, then by drag and drop.
  await cuts.nth(3).getByRole('button', { name: 'Move cut 4 earlier' }).click();
  await ready(4);
  const order4 = await srcs();
  assert.deepEqual(order4, [order1[0], order1[1], order1[3], order1[2]]);
  await cuts.nth(0).dragTo(cuts.nth(2));
  await ready(5);
  const order5 = await srcs();
  assert.equal(order5[2], order1[0], 'dragging cut 1 onto cut 3 moves it to position 3');
  // Versions list and restore of version 1.
  await page.locator('.versions li').nth(4).waitFor();
  await page.locator('.versions li', { hasText: 'v1 ·' }).getByRole('button', { name: 'Restore' }).click();
  await ready(6);
  assert.deepEqual(await srcs(), order1, 'restoring version 1 brings its order back');
  // Add a cut at the end (drawn on its own), then delete it again.
  await page.locator('form', { hasText: 'Add a cut' }).getByLabel('Scene').fill('매장 진열대의 텀블러');
  await page.locator('form', { hasText: 'Add a cut' }).getByLabel('Copy').fill('지금 만나보세요');
  await page.getByRole('button', { name: 'Add cut', exact: true }).click();
  await ready(7);
  assert.equal(await cuts.count(), 5);
  const added = await loaded(cuts.nth(4).locator('img'));
  await page.getByRole('button', { name: 'Delete cut 5' }).click();
  await ready(8);
  assert.equal(await cuts.count(), 4);
  assert.deepEqual(await srcs(), order1);
  // Comments on a cut.
  await cuts.nth(0).getByRole('button', { name: 'Comments' }).click();
  await page.locator('#cut-comments').getByLabel('Your name').fill('민지');
  await page.locator('#cut-comments').getByLabel('Comment').fill('로고를 더 크게 보여 주세요');
  await page.locator('#cut-comments').getByRole('button', { name: 'Add comment' }).click();
  await page.locator('#cut-comments .comments', { hasText: '로고를 더 크게 보여 주세요' }).waitFor();
  // Downloads.
  const pdf = await page.getByRole('link', { name: 'Sheet (PDF)' }).getAttribute('href');
  const pdfHead = await page.evaluate(async (u) => (await (await fetch(u)).text()).slice(0, 5), pdf);
  assert.equal(pdfHead, '%PDF-');
  const anim = await page.locator('a', { hasText: 'Animatic' }).count();
  assert.ok(anim >= 1, 'an animatic link');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download ZIP' }).click()]);
  const zipPath = `${work}/storyboard.zip`;
  await dl.saveAs(zipPath);
  assert.equal(readFileSync(zipPath).subarray(0, 2).toString(), 'PK');
  const versions = await page.locator('.versions li').count();
  return { cut_images: imgs, added_cut_image: added, versions, ...(await finish('storyboards', page.url().replace(/^.*?#/, '#'), '.cuts img')) };
});

// --- Models -----------------------------------------------------------------------------------
// --- Stored XSS --------------------------------------------------------------------------------
// Markup and script written into every user field that pages show (a prompt, a diary post, its
// captions and a comment, a display name, a campaign's name and brand, a ticket's title,
// tagline and customer name, a storyboard's product and brief, an upload's file name) must
// come back as text: nothing runs, no element is made, and the text is on the page.
await step('xss', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  ctx.setDefaultTimeout(TIMEOUT);
  // Any payload that runs calls window.__x (defined before each page's own scripts).
  await ctx.addInitScript(() => { window.__hits = []; window.__x = (w) => window.__hits.push(String(w || location.hash)); });
  const p = await ctx.newPage();
  watch(p, 'xss');
  const dialogs = [];
  p.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const pay = (tag) => `<img src=x onerror=__x('${tag}')><svg onload=__x('${tag}')></svg>`;
  // Short enough (19 characters) for the 20-character ticket title.
  const short = (n) => `<svg onload=__x(${n})>`;
  await p.goto(`${base}/#/playground`);
  const api = (path, body, csrf) => p.evaluate(async ([path, body, csrf]) => {
    const headers = { 'content-type': 'application/json' };
    if (csrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, [path, body, csrf]);
  const waitJob = (id) => p.evaluate(async (id) => {
    for (let i = 0; i < 1200; i++) {
      const j = await (await fetch(`/v1/predictions/${id}`)).json();
      if (['succeeded', 'failed', 'canceled'].includes(j.status)) return j;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`job ${id} did not finish`);
  }, id);
  // A prompt (shown on the jobs page).
  const job = await api('/v1/models/atelier/text-to-image/predictions', { input: { prompt: pay('prompt'), width: 64, height: 64, steps: 2 } });
  assert.equal(job.status, 201, JSON.stringify(job.body));
  await waitJob(job.body.id);
  // Diary: a display name, a post with captions, a comment.
  const who = await api('/v1/diary/signup', { email: `xss${Date.now()}@example.com`, password: 'correct horse battery', display_name: short(1) });
  assert.equal(who.status, 201, JSON.stringify(who.body));
  const csrf = who.body.csrf_token;
  const post = await api('/v1/diary/posts', { text: `오늘의 일기 ${pay('post')}`, visibility: 'public', captions: [1, 2, 3, 4].map((i) => `${short(2)}${i}`) }, csrf);
  assert.equal(post.status, 202, JSON.stringify(post.body));
  const postId = post.body.id;
  await waitJob(post.body.job_id);
  const comment = await api(`/v1/diary/posts/${postId}/comments`, { text: pay('comment') }, csrf);
  assert.ok(comment.status < 300, JSON.stringify(comment.body));
  // A campaign and a ticket with supplied copy, and its public share page (server-rendered).
  const camp = await api('/v1/campaigns', { name: pay('campaign'), brand: short(3), generation: { steps: 2, width: 64, height: 64 }, copy: 'supplied', presets: ['minimal'], scale: 0.25 });
  assert.equal(camp.status, 201, JSON.stringify(camp.body));
  const tk = await api(`/v1/campaigns/${camp.body.id}/tickets`, { name: short(4), text: 'plain story', title: short(5), tagline: `<img src=x onerror=__x(7)>`, show_name: true });
  assert.equal(tk.status, 201, JSON.stringify(tk.body));
  await waitJob(tk.body.id);
  const tinfo = await p.evaluate(async (id) => (await fetch(`/v1/tickets/${id}`)).json(), tk.body.id);
  // A storyboard with markup in its product, brief and a cut.
  const cut = (i) => ({ scene: `${pay('scene')} ${i}`, camera: 'wide', copy: short(6), duration_s: 2, image_prompt: 'product shot' });
  const board = await api('/v1/storyboards', { product: pay('product'), category: 'home', brief: pay('brief'), tone: 'warm', aspect: '16:9', seed: 1,
    script: { title: `<img src=x onerror=__x(8)>`, cuts: [1, 2, 3, 4].map(cut) }, generation: { size: 64, steps: 2 } });
  assert.ok(board.status < 300, JSON.stringify(board.body));
  // A CSV upload whose file name is markup (shown while the batch runs).
  const visited = [];
  const visit = async (route, ready, text) => {
    await p.goto(`${base}/${route}`);
    await p.locator(ready).first().waitFor();
    await p.waitForTimeout(400);
    if (text) await p.getByText(text, { exact: false }).first().waitFor();
    visited.push(route);
  };
  await visit('#/jobs', 'tbody tr', null);
  await visit('#/lounge', '.feed .post-card', null);
  await visit(`#/lounge/p/${postId}`, 'img.comic', "onerror=__x('comment')");
  await visit('#/tickets', 'main h1', "onerror=__x('campaign')");
  await visit(`#/tickets/${camp.body.id}`, 'main h1', "onerror=__x('campaign')");
  await visit('#/storyboards', 'main h1', "onerror=__x('product')");
  if (board.body && board.body.id) await visit(`#/storyboards/${board.body.id}`, 'main h1', "onerror=__x('scene')");
  await p.goto(`${base}/#/tickets/${camp.body.id}`);
  await p.getByLabel('CSV file').setInputFiles({ name: '<img src=x onerror=__x(\'file\')>.csv', mimeType: 'text/csv', buffer: Buffer.from('name,text,title,tagline\nA,story,T,L\n') });
  await p.getByRole('button', { name: 'Upload and start' }).click();
  await p.waitForTimeout(800);
  const share = tinfo.share_url ? new URL(tinfo.share_url).pathname : null;
  if (share) {
    await p.goto(`${base}${share}`);
    await p.waitForTimeout(400);
    const html = await p.content();
    assert.ok(!/<svg onload/i.test(html) && !/<img src=x/i.test(html), 'the share page escapes ticket text');
    visited.push(share);
  }
  const hits = await p.evaluate(() => window.__hits);
  const made = await p.evaluate(() => document.querySelectorAll('img[src="x"], svg[onload]').length);
  await ctx.close();
  assert.deepEqual(hits, [], `stored markup ran: ${hits}`);
  assert.deepEqual(dialogs, [], 'no dialogs');
  assert.equal(made, 0, 'no element was made from stored text');
  return { pages_checked: visited.length, payload_fields: 16, executed: hits.length };
});

await step('models', async () => {
  await page.goto(`${base}/#/models`);
  const row = page.locator('tr[data-model="sd15-tiny"]');
  await row.waitFor();
  await row.locator('.badge.s-loaded').waitFor();
  assert.match(await row.innerText(), /\d+(\.\d)? (KB|MB|GB)/, 'with its memory');
  assert.match(await page.locator('.facts').innerText(), /not configured/, 'no language model in this test');
  await page.getByLabel('Repository').fill(repo);
  await page.getByRole('button', { name: 'Pull', exact: true }).click();
  const done = page.locator('.pull[data-status="succeeded"]');
  await done.waitFor();
  const max = Number(await done.locator('.progress').getAttribute('data-max'));
  assert.equal(max, 1, 'pull progress reached 100%');
  const pulls = await page.evaluate(async () => (await (await fetch('/v1/models/pulls')).json()).data);
  assert.ok(pulls[0].files_total > 0 && pulls[0].files_done === pulls[0].files_total, `every planned file counted once: ${JSON.stringify(pulls[0])}`);
  const name = repo.split('/')[1];
  await page.locator(`tr[data-model="${name}"]`).waitFor();
  return { pulled: name, ...(await finish('models', '#/models', 'tbody tr')) };
});

// --- Language switch --------------------------------------------------------------------------
await step('language', async () => {
  await small.goto(`${base}/#/playground`);
  await small.getByRole('link', { name: '플레이그라운드' }).waitFor();
  await small.getByRole('button', { name: 'English' }).click();
  await small.getByRole('link', { name: 'Playground' }).waitFor();
  await small.getByRole('button', { name: '한국어' }).click();
  await small.getByRole('link', { name: '플레이그라운드' }).waitFor();
  // Keyboard: after a fresh load the skip link is the first stop.
  await small.reload();
  await small.getByRole('link', { name: '플레이그라운드' }).waitFor();
  await small.keyboard.press('Tab');
  const first = await small.evaluate(() => document.activeElement.className);
  assert.equal(first, 'skip');
  return { switched: true };
});

// --- A server with API keys: the UI asks for one and sends it on every request and stream ----------
if (args['keyed-base'] && args.key) {
  await step('keyed', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
    ctx.setDefaultTimeout(TIMEOUT);
    const kp = await ctx.newPage();
    watch(kp, 'keyed');
    await kp.goto(`${args['keyed-base']}/#/playground`);
    await kp.getByRole('heading', { name: 'Sign in with an API key' }).waitFor();
    const keyAxe = await axe(kp, 'keyed sign-in');
    await kp.getByRole('button', { name: 'Enter API key' }).click();
    await kp.getByLabel('Key', { exact: true }).fill(args.key);
    await kp.getByRole('button', { name: 'Save' }).click();
    await kp.getByLabel('Prompt', { exact: true }).fill('a key holder\'s picture');
    await kp.getByLabel('Width').fill('64');
    await kp.getByLabel('Height').fill('64');
    await kp.getByLabel('Steps').fill('4');
    await kp.getByRole('button', { name: 'Generate' }).click();
    const img = kp.locator('.result img').first();
    await img.waitFor();
    const size = await img.evaluate(async (i) => { await i.decode(); return [i.naturalWidth, i.naturalHeight]; });
    assert.deepEqual(size, [64, 64]);
    const updates = Number(await kp.locator('#run .progress').getAttribute('data-updates'));
    assert.ok(updates >= 2, `the stream carried the key (${updates} progress updates)`);
    await kp.goto(`${args['keyed-base']}/#/jobs`);
    await kp.locator('tr[data-status="succeeded"]').first().waitFor();
    await ctx.close();
    return { image: size, progress_updates: updates, axe_sign_in: keyAxe };
  });
}

await browser.close();
writeFileSync(`${work}/report.json`, JSON.stringify({ report, problems }, null, 2));
for (const r of report) console.log(JSON.stringify(r));
if (problems.length) {
  console.error(`\n${problems.length} problem(s):\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(`\nall ${report.length} flows passed, no console errors, no serious or critical axe violations`);
