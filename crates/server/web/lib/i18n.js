// Korean and English UI text. English strings are the keys; `ko.js` maps each to Korean (a unit
// test in the server crate checks that every t('…') in the UI has a Korean entry).
import ko from './ko.js';

const KEY = 'atelier.lang';

function initial() {
  const saved = localStorage.getItem(KEY);
  if (saved === 'ko' || saved === 'en') return saved;
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  return prefs.some((l) => String(l).toLowerCase().startsWith('ko')) &&
    !String(prefs[0]).toLowerCase().startsWith('en') ? 'ko' : 'en';
}

export let lang = initial();
document.documentElement.lang = lang;

/** Translates `s`, filling `{name}` placeholders from `vars`. */
export function t(s, vars) {
  let out = lang === 'ko' ? (ko[s] ?? s) : s;
  if (vars) out = out.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return out;
}

export function setLang(l) {
  lang = l === 'ko' ? 'ko' : 'en';
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
}
