// Building DOM safely: text always goes in as text nodes, never as HTML, so nothing a user
// wrote (a post, a comment, a campaign name, a file name) can become markup.

/** h('button', {class: 'primary', onclick: f}, 'Save') */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'multiple') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function put(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A labelled form field: label + control (+ hint), wired with ids for screen readers. */
export function field(label, control, hint) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  const hintEl = hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

export function select(name, options, value) {
  const s = h('select', { name });
  for (const o of options) {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    s.append(h('option', { value: v, selected: String(v) === String(value ?? '') }, text));
  }
  return s;
}

export function fmtBytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function fmtTime(v) {
  if (v == null) return '';
  const d = typeof v === 'number' ? new Date(v) : new Date(v);
  return isNaN(d) ? '' : d.toLocaleString();
}

export function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 12)}…` : id;
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast ${kind}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

/** Shows an API error in `box` and marks the named form field invalid. */
export function showError(box, err, form) {
  if (form) form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  if (!err) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  put(box, err.field ? `${err.field}: ${err.message}` : err.message || String(err));
  if (form && err.field) {
    const leaf = err.field.split('.').pop().replace(/\[\d+\]$/, '');
    const el = form.querySelector(`[name="${CSS.escape(err.field)}"], [name="${CSS.escape(leaf)}"]`);
    if (el) { el.setAttribute('aria-invalid', 'true'); el.focus(); }
  }
}

/** Reads a form's named controls into an object (numbers for type=number, empty omitted). */
export function formData(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === 'checkbox') { out[el.name] = el.checked; continue; }
    const v = el.value.trim();
    if (v === '') continue;
    out[el.name] = el.type === 'number' ? Number(v) : v;
  }
  return out;
}

/** A progress bar with a text label, kept accessible. */
export function progressBar(label) {
  const bar = h('progress', { max: '1', value: '0', 'aria-label': label });
  const text = h('span', { class: 'progress-text' });
  const wrap = h('div', { class: 'progress' }, bar, text);
  wrap.set = (fraction, caption) => {
    const f = Math.max(0, Math.min(1, Number(fraction) || 0));
    bar.value = f;
    const n = Number(wrap.dataset.updates || 0) + 1;
    wrap.dataset.updates = String(n);
    wrap.dataset.max = String(Math.max(Number(wrap.dataset.max || 0), f));
    text.textContent = caption ?? `${Math.round(f * 100)}%`;
  };
  return wrap;
}

export function badge(status, label) {
  return h('span', { class: `badge s-${status}` }, label ?? status);
}
