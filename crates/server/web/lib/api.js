// The JSON API as the UI uses it: one fetch wrapper (API key, CSRF token, typed errors), server-sent
// events read through fetch (so they carry the API key, which EventSource cannot), and downloads.

const KEY = 'atelier.key';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_error';
    this.field = e.field || null;
  }
}

export const auth = {
  get key() { return localStorage.getItem(KEY) || ''; },
  set key(v) { if (v) localStorage.setItem(KEY, v); else localStorage.removeItem(KEY); },
  /** The diary session's CSRF token, from signup, login or /v1/diary/session. */
  csrf: '',
};

function headers(extra) {
  const h = new Headers(extra || {});
  if (auth.key && !h.has('authorization')) h.set('authorization', `Bearer ${auth.key}`);
  if (auth.csrf) h.set('x-csrf-token', auth.csrf);
  return h;
}

/** Sends a request; JSON bodies are encoded, Blob/File bodies are sent as they are. */
export async function api(method, path, body, opts = {}) {
  const init = { method, headers: headers(opts.headers), signal: opts.signal, credentials: 'same-origin' };
  if (body instanceof Blob) {
    init.body = body;
    if (body.type && !init.headers.has('content-type')) init.headers.set('content-type', body.type);
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers.set('content-type', 'application/json');
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (p, o) => api('GET', p, undefined, o);
export const post = (p, b, o) => api('POST', p, b ?? {}, o);

/** Relative path of an absolute URL on this origin (the API answers with absolute URLs). */
export function local(url) {
  try {
    const u = new URL(url, location.href);
    return u.origin === location.origin ? u.pathname + u.search : url;
  } catch { return url; }
}

/**
 * Reads a server-sent event stream; calls onEvent({event, data, id}) for each event until the
 * stream ends or `signal` aborts. Data that is JSON is parsed.
 */
export async function stream(path, onEvent, signal) {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok || !res.body) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, data);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const ev = { event: 'message', data: '', id: null };
      const lines = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const k = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (k === 'event') ev.event = v;
        else if (k === 'id') ev.id = v;
        else if (k === 'data') lines.push(v);
      }
      if (!lines.length) continue;
      ev.data = lines.join('\n');
      try { ev.data = JSON.parse(ev.data); } catch { /* plain text */ }
      onEvent(ev);
    }
  }
}

/** Downloads `url` with the API key (an <a download> cannot send one) under `filename`. */
export async function download(url, filename) {
  const res = await fetch(local(url), { headers: headers() });
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, data);
  }
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
  return blob;
}

/** Calls `fn` now and every `ms` until the returned stop function is called or fn returns false. */
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { if (e.name !== 'AbortError') console.warn(e); }
    if (!stopped && again) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
