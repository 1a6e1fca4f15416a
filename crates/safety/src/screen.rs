//! Prompt screening: normalise, tokenise per script, match list terms, apply exceptions and
//! context rules, decide.

use serde::{Deserialize, Serialize};

use crate::lists::{self, severity, Combo, Role, Shape, Term};
use crate::normalize::{leet, normalize, Kind, Unit};
use crate::SafetyError;

/// One list entry found in the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub category: String,
    /// The list entry as written (already in normal form).
    pub term: String,
    /// `[start, end)` in characters (Unicode scalar values) of the original text.
    pub span: [usize; 2],
    /// The list file and line, or `policy`.
    pub source: String,
}

/// The verdict on one text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding category (after context rules: a sexual term next to a child is `minors`).
    pub category: Option<String>,
    pub term: Option<String>,
    pub span: Option<[usize; 2]>,
    /// Every deny match, most severe first.
    pub matches: Vec<Match>,
    /// Deny matches a policy's allow list let through (recorded in the audit log).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub overridden: Vec<Match>,
}

/// A compiled set of lists: the built-in ones plus whatever a policy layers on top.
#[derive(Debug, Clone)]
pub struct Screener {
    terms: Vec<Term>,
    combos: Vec<Combo>,
    /// Categories not enforced (matches are dropped).
    disabled: Vec<String>,
}

/// A word of Latin text: its normalised characters and the unit range it covers.
#[derive(Debug, Clone)]
struct Word {
    chars: Vec<char>,
    first: usize,
    last: usize,
}

/// A run of Hangul jamo: characters, kinds and unit indices.
#[derive(Debug, Clone, Default)]
struct HSeg {
    chars: Vec<char>,
    kinds: Vec<Kind>,
    units: Vec<usize>,
}

impl HSeg {
    fn extend(&mut self, o: &HSeg) {
        self.chars.extend_from_slice(&o.chars);
        self.kinds.extend_from_slice(&o.kinds);
        self.units.extend_from_slice(&o.units);
    }
    /// Short words (one syllable, or up to three loose jamo) are joined with their short
    /// neighbours, so `섹 스` and `ㅅ ㅂ` read as one word but `아시 발표` does not.
    fn short(&self) -> bool {
        let syl = self
            .kinds
            .iter()
            .filter(|k| matches!(k, Kind::Syllable { start: true }))
            .count();
        let loose = self.kinds.iter().filter(|k| **k == Kind::Jamo).count();
        (syl == 1 && loose == 0) || (syl == 0 && (1..=3).contains(&loose))
    }
}

/// A match before context rules: unit range and the term.
struct Hit<'a> {
    term: &'a Term,
    first: usize,
    last: usize,
}

impl Screener {
    /// The built-in English and Korean lists.
    pub fn builtin() -> Result<Self, SafetyError> {
        let mut terms = Vec::new();
        let mut combos = Vec::new();
        for (name, text) in lists::BUILTIN {
            let p = lists::parse(name, text, combos.len())?;
            terms.extend(p.terms);
            combos.extend(p.combos);
        }
        Ok(Self {
            terms,
            combos,
            disabled: Vec::new(),
        })
    }

    /// A screener with no entries (policies can still add some).
    pub fn empty() -> Self {
        Self {
            terms: Vec::new(),
            combos: Vec::new(),
            disabled: Vec::new(),
        }
    }

    /// Adds entries (a list file, or a policy's deny/allow lists).
    pub fn extend(&mut self, terms: impl IntoIterator<Item = Term>) {
        self.terms.extend(terms);
    }

    /// Stops enforcing a category.
    pub fn disable(&mut self, category: &str) {
        self.disabled.push(category.to_owned());
    }

    /// Number of compiled entries.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True when no entries are loaded.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Screens one text.
    pub fn screen(&self, text: &str) -> Decision {
        let units = normalize(text);
        let words = latin_words(&units);
        let (tokens, segs) = hangul_segments(&units, false);
        // Entries with digits (`19금`) are read against words that keep their digits.
        let (dtokens, dsegs) = hangul_segments(&units, true);
        let mut hits: Vec<Hit> = Vec::new();
        for term in &self.terms {
            match &term.shape {
                Shape::Words { words: tw, prefix } => {
                    for (first, last) in match_words(&words, tw, *prefix) {
                        hits.push(Hit { term, first, last });
                    }
                }
                Shape::Hangul { words: tw } => {
                    let digits = tw.iter().flatten().any(char::is_ascii_digit);
                    let (tokens, segs) = if digits {
                        (&dtokens, &dsegs)
                    } else {
                        (&tokens, &segs)
                    };
                    for (first, last) in match_hangul(tokens, segs, tw) {
                        hits.push(Hit { term, first, last });
                    }
                }
                Shape::Jamo { chars } => {
                    for seg in &segs {
                        for p in find_all(&seg.chars, chars) {
                            if seg.kinds[p..p + chars.len()]
                                .iter()
                                .all(|k| *k == Kind::Jamo)
                            {
                                hits.push(Hit {
                                    term,
                                    first: seg.units[p],
                                    last: seg.units[p + chars.len() - 1],
                                });
                            }
                        }
                    }
                }
            }
        }
        let allows: Vec<(usize, usize, bool)> = hits
            .iter()
            .filter(|h| h.term.role == Role::Allow)
            .map(|h| (h.first, h.last, h.term.source == "policy"))
            .collect();
        // A minor word inside a name (`아이` in `아이유`) is part of the name, not a child.
        let persons: Vec<(usize, usize)> = hits
            .iter()
            .filter(|h| h.term.role == Role::Person)
            .map(|h| (h.first, h.last))
            .collect();
        let minor = hits.iter().any(|h| {
            h.term.role == Role::Minor
                && !persons.iter().any(|(a, b)| *a <= h.first && h.last <= *b)
        }) || minor_age(&units);
        let person = hits.iter().any(|h| h.term.role == Role::Person);
        let span = |h: &Hit| [units[h.first].origin, units[h.last].origin + 1];
        let mut matches = Vec::new();
        let mut overridden = Vec::new();
        let covered = |first: usize, last: usize| {
            allows
                .iter()
                .filter(|(a, b, _)| *a <= first && last <= *b)
                .min_by_key(|(a, b, _)| b - a)
                .copied()
        };
        // Combination rules: both sides present (outside allow entries).
        let mut combo_hits: Vec<(String, String, usize, usize, String)> = Vec::new();
        for (rule, c) in self.combos.iter().enumerate() {
            let side = |s: u8| {
                hits.iter().find(|h| {
                    h.term.role == Role::Part { rule, side: s }
                        && covered(h.first, h.last).is_none()
                })
            };
            let Some(a) = side(0) else { continue };
            let b = side(1);
            if b.is_none() && !(c.minor_b && minor) {
                continue;
            }
            let (first, last) = match b {
                Some(b) => (a.first.min(b.first), a.last.max(b.last)),
                None => (a.first, a.last),
            };
            let term = match b {
                Some(b) => format!("{} + {}", a.term.text, b.term.text),
                None => format!("{} + (minor)", a.term.text),
            };
            combo_hits.push((c.category.clone(), term, first, last, c.source.clone()));
        }
        for (cat, term, first, last, source) in combo_hits {
            if !self.disabled.contains(&cat) {
                matches.push(Match {
                    category: cat,
                    term,
                    span: [units[first].origin, units[last].origin + 1],
                    source,
                });
            }
        }
        for h in &hits {
            let Role::Deny(cat) = &h.term.role else {
                continue;
            };
            if self.disabled.iter().any(|d| d == cat) {
                continue;
            }
            let m = Match {
                category: cat.clone(),
                term: h.term.text.clone(),
                span: span(h),
                source: h.term.source.clone(),
            };
            // The narrowest allow entry covering the match decides whether it is an
            // exception of the lists themselves or a policy override.
            let cover = covered(h.first, h.last);
            match cover {
                Some((_, _, true)) if h.term.source != "policy" => overridden.push(m),
                Some(_) => {}
                None => matches.push(m),
            }
        }
        for m in &mut matches {
            let upgrade = match m.category.as_str() {
                "sexual" if minor => Some("minors"),
                "sexual" | "violence" if person => Some("deepfake"),
                _ => None,
            };
            if let Some(u) = upgrade {
                m.category = u.to_owned();
            }
        }
        matches.sort_by_key(|m| (severity(&m.category), m.span[0]));
        matches.dedup_by(|a, b| a.span == b.span && a.category == b.category);
        overridden.dedup();
        let top = matches.first();
        Decision {
            allowed: top.is_none(),
            category: top.map(|m| m.category.clone()),
            term: top.map(|m| m.term.clone()),
            span: top.map(|m| m.span),
            matches,
            overridden,
        }
    }
}

fn is_wordy(k: Kind) -> bool {
    matches!(k, Kind::Letter | Kind::Leet | Kind::Mask)
}

/// Drops masks at the edges of a word (`*nude*` is emphasis, not a masked letter) and
/// words that are mostly masks (`***` says nothing).
fn trim_masks(w: &mut Word, units: &[Unit]) -> bool {
    while w.chars.first() == Some(&'*') {
        w.chars.remove(0);
        w.first += 1;
        while w.first < units.len()
            && units[w.first].kind != Kind::Mask
            && !is_wordy(units[w.first].kind)
        {
            w.first += 1;
        }
    }
    while w.chars.last() == Some(&'*') {
        w.chars.pop();
        w.last = w.last.saturating_sub(1);
    }
    let masks = w.chars.iter().filter(|c| **c == '*').count();
    !w.chars.is_empty() && masks * 2 < w.chars.len()
}

/// Latin words: split at spaces and punctuation; each token whose letters were split by
/// punctuation (`s.e.x`) is also read joined, and runs of single letters (`s e x`) are
/// joined too. Joined readings come after the plain words, so phrases match plain words.
fn latin_words(units: &[Unit]) -> Vec<Vec<Word>> {
    let mut plain: Vec<Word> = Vec::new();
    let mut joined: Vec<Word> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        if units[i].kind == Kind::Space {
            i += 1;
            continue;
        }
        let start = i;
        while i < units.len() && units[i].kind != Kind::Space {
            i += 1;
        }
        let tok = &units[start..i];
        let mut parts = 0;
        let mut j = 0;
        while j < tok.len() {
            if !is_wordy(tok[j].kind) {
                j += 1;
                continue;
            }
            let s = j;
            while j < tok.len() && is_wordy(tok[j].kind) {
                j += 1;
            }
            let mut w = Word {
                chars: tok[s..j].iter().map(|u| u.ch).collect(),
                first: start + s,
                last: start + j - 1,
            };
            if trim_masks(&mut w, units) {
                parts += 1;
                plain.push(w);
            }
        }
        if parts > 1 {
            let idx: Vec<usize> = (0..tok.len()).filter(|&k| is_wordy(tok[k].kind)).collect();
            if let (Some(&f), Some(&l)) = (idx.first(), idx.last()) {
                let mut w = Word {
                    chars: idx.iter().map(|&k| tok[k].ch).collect(),
                    first: start + f,
                    last: start + l,
                };
                if trim_masks(&mut w, units) {
                    joined.push(w);
                }
            }
        }
    }
    // Runs of one-letter words: `s e x`, `p.o.r.n`.
    let mut k = 0;
    while k < plain.len() {
        if plain[k].chars.len() != 1 {
            k += 1;
            continue;
        }
        let s = k;
        while k < plain.len() && plain[k].chars.len() == 1 {
            k += 1;
        }
        if k - s >= 2 {
            joined.push(Word {
                chars: plain[s..k].iter().map(|w| w.chars[0]).collect(),
                first: plain[s].first,
                last: plain[k - 1].last,
            });
        }
    }
    vec![plain, joined]
}

/// Character equality allowing leet (`0` for `o`, `1` for `i` or `l`) and masks.
fn ceq(w: char, t: char) -> bool {
    w == t || w == '*' || leet(w) == Some(t) || (matches!(w, '1' | '|' | '!') && t == 'l')
}

/// Inflections a whole-word entry also matches: `behead` → `beheaded`, `beheading`;
/// `rape` → `raped`, `raping`; `stab` → `stabbed`, `stabbing`. (No `-y`: `spic` ≠ `spicy`.)
const SUFFIXES: [&str; 8] = ["s", "es", "ed", "d", "ing", "er", "ers", "ness"];

fn inflected(w: &[char], t: &[char], eq: &dyn Fn(&[char], &[char]) -> bool) -> bool {
    if t.len() < 3 || w.len() <= t.len() {
        return false;
    }
    let stem_ok = |n: usize| eq(&w[..n], t);
    let tail = |n: usize| w[n..].iter().collect::<String>();
    if stem_ok(t.len()) {
        let rest = tail(t.len());
        let last: String = t[t.len().saturating_sub(2)..].iter().collect();
        // English spelling: `-es` only after a sibilant (`sexes`, not `spic` → `spices`),
        // `-d` only after `e` (`raped`).
        let fits = match rest.as_str() {
            "es" => ["s", "x", "z", "ch", "sh"]
                .iter()
                .any(|e| last.ends_with(e)),
            "d" => last.ends_with('e'),
            r => SUFFIXES.contains(&r),
        };
        if fits {
            return true;
        }
        // Doubled final consonant: stab → stabbing.
        let last = t[t.len() - 1];
        if !"aeiou".contains(last) && w[t.len()] == last {
            let rest = tail(t.len() + 1);
            if ["ing", "ed", "er"].contains(&rest.as_str()) {
                return true;
            }
        }
    }
    // Silent e dropped: rape → raping.
    if t[t.len() - 1] == 'e' && w.len() > t.len() - 1 && eq(&w[..t.len() - 1], &t[..t.len() - 1]) {
        let rest = tail(t.len() - 1);
        if ["ing", "er", "ers"].contains(&rest.as_str()) {
            return true;
        }
    }
    false
}

fn squeeze(v: &[char]) -> Vec<char> {
    let mut out: Vec<char> = Vec::with_capacity(v.len());
    for &c in v {
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    out
}

fn has_run3(v: &[char]) -> bool {
    v.windows(3).any(|w| w[0] == w[1] && w[1] == w[2])
}

fn word_eq(w: &[char], t: &[char], prefix: bool) -> bool {
    let cmp = |w: &[char], t: &[char]| {
        if prefix {
            w.len() >= t.len() && w.iter().zip(t).all(|(a, b)| ceq(*a, *b))
        } else {
            w.len() == t.len() && w.iter().zip(t).all(|(a, b)| ceq(*a, *b))
        }
    };
    let exact =
        |w: &[char], t: &[char]| w.len() == t.len() && w.iter().zip(t).all(|(a, b)| ceq(*a, *b));
    // Stretched letters (`seeex`, `kiiill`) count only when stretched past doubling, so
    // `as` never reads as `ass`.
    cmp(w, t)
        || (has_run3(w) && cmp(&squeeze(w), &squeeze(t)))
        || (!prefix && inflected(w, t, &exact))
}

fn match_words(lines: &[Vec<Word>], tw: &[Vec<char>], prefix: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let n = tw.len();
    for (li, words) in lines.iter().enumerate() {
        // Joined readings are single words; phrases only match plain words.
        if li > 0 && n > 1 {
            continue;
        }
        if words.len() < n {
            continue;
        }
        for s in 0..=words.len() - n {
            let ok = (0..n).all(|k| {
                let last = k + 1 == n;
                word_eq(&words[s + k].chars, &tw[k], prefix && last)
            });
            if ok {
                out.push((words[s].first, words[s + n - 1].last));
            }
        }
    }
    out
}

/// Hangul words (jamo of one whitespace-separated token, punctuation inside dropped, and
/// digits too unless `digits`) and segments to search: every word, plus runs of short words
/// joined.
fn hangul_segments(units: &[Unit], digits: bool) -> (Vec<HSeg>, Vec<HSeg>) {
    let mut tokens: Vec<HSeg> = Vec::new();
    let mut cur = HSeg::default();
    for (i, u) in units.iter().enumerate() {
        match u.kind {
            Kind::Space if !cur.chars.is_empty() => {
                tokens.push(std::mem::take(&mut cur));
            }
            Kind::Syllable { .. } | Kind::Jamo => {
                cur.chars.push(u.ch);
                cur.kinds.push(u.kind);
                cur.units.push(i);
            }
            Kind::Leet if digits && u.ch.is_ascii_digit() => {
                cur.chars.push(u.ch);
                cur.kinds.push(u.kind);
                cur.units.push(i);
            }
            // Latin letters inside a Hangul word end it (`섹스tape` keeps `섹스`).
            Kind::Letter if !cur.chars.is_empty() => tokens.push(std::mem::take(&mut cur)),
            _ => {}
        }
    }
    if !cur.chars.is_empty() {
        tokens.push(cur);
    }
    let mut segs = tokens.clone();
    let mut k = 0;
    while k < tokens.len() {
        if !tokens[k].short() {
            k += 1;
            continue;
        }
        let s = k;
        let mut joined = HSeg::default();
        while k < tokens.len() && tokens[k].short() {
            joined.extend(&tokens[k]);
            k += 1;
        }
        if k - s >= 2 {
            segs.push(joined);
        }
    }
    (tokens, segs)
}

fn find_all(hay: &[char], needle: &[char]) -> Vec<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    (0..=hay.len() - needle.len())
        .filter(|&p| hay[p..p + needle.len()] == *needle)
        .collect()
}

/// Occurrences of `w` in `seg` that begin at a syllable (or typed jamo, or a digit), never
/// mid-syllable.
fn find_at_starts(seg: &HSeg, w: &[char]) -> Vec<usize> {
    find_all(&seg.chars, w)
        .into_iter()
        .filter(|&p| {
            matches!(
                seg.kinds[p],
                Kind::Syllable { start: true } | Kind::Jamo | Kind::Leet
            )
        })
        .collect()
}

fn match_hangul(tokens: &[HSeg], segs: &[HSeg], tw: &[Vec<char>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // As one word (also catches phrases written without their space).
    let all: Vec<char> = tw.concat();
    for seg in segs {
        for p in find_at_starts(seg, &all) {
            out.push((seg.units[p], seg.units[p + all.len() - 1]));
        }
    }
    // Phrases across consecutive words: each word of the entry inside the next word.
    if tw.len() > 1 && tokens.len() >= tw.len() {
        for s in 0..=tokens.len() - tw.len() {
            let mut first = None;
            let mut last = 0;
            let ok = tw.iter().enumerate().all(|(k, w)| {
                let t = &tokens[s + k];
                match find_at_starts(t, w).first() {
                    Some(&p) => {
                        first.get_or_insert(t.units[p]);
                        last = t.units[p + w.len() - 1];
                        true
                    }
                    None => false,
                }
            });
            if let (true, Some(f)) = (ok, first) {
                out.push((f, last));
            }
        }
    }
    out
}

/// An age under 18 written as a number: `14 year old`, `14yo`, `14-years-old`, `14살`, `14세`.
fn minor_age(units: &[Unit]) -> bool {
    let s: String = units
        .iter()
        .map(|u| if u.kind == Kind::Other { ' ' } else { u.ch })
        .collect();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let st = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let n: u32 = chars[st..i]
            .iter()
            .collect::<String>()
            .parse()
            .unwrap_or(99);
        let rest: String = chars[i..]
            .iter()
            .collect::<String>()
            .trim_start()
            .replace(['-', '_'], " ");
        let aged = ["year old", "years old", "yr old", "yrs old", "yo ", "y o "]
            .iter()
            .any(|p| rest.starts_with(p))
            || rest == "yo"
            || rest.starts_with("ㅅㅏㄹ")
            || rest.starts_with("ㅅㅔ");
        if aged && (1..18).contains(&n) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scr() -> Screener {
        Screener::builtin().expect("built-in lists parse")
    }

    #[test]
    fn spans_point_into_the_original_text() {
        let d = scr().screen("a photo, N.U.D.E woman");
        assert!(!d.allowed);
        assert_eq!(d.category.as_deref(), Some("sexual"));
        assert_eq!(d.span, Some([9, 16]));
        let d = scr().screen("오늘은 섹 스 얘기");
        assert_eq!(d.span, Some([4, 7]));
    }

    #[test]
    fn context_upgrades_category() {
        let d = scr().screen("nude child");
        assert_eq!(d.category.as_deref(), Some("minors"));
        let d = scr().screen("a 12 year old, nude");
        assert_eq!(d.category.as_deref(), Some("minors"));
        let d = scr().screen("a 30 year old, nude");
        assert_eq!(d.category.as_deref(), Some("sexual"));
        let d = scr().screen("taylor swift nude");
        assert_eq!(d.category.as_deref(), Some("deepfake"));
        assert!(scr().screen("portrait of taylor swift on stage").allowed);
    }

    #[test]
    fn scunthorpe_words_pass() {
        let s = scr();
        for ok in [
            "a map of Sussex and Essex",
            "the assassin's creed",
            "a cocktail bar in Scunthorpe",
            "데이터 분석 보고서",
            "시발점에서 출발하는 기차",
            "마약김밥 한 접시",
            "누드김밥",
            "대마도 여행",
            "자살골을 넣은 축구 선수",
            "섹션 3의 그림",
            "a murder of crows at dawn",
            "analysis of a classic grape therapist",
            "아시 발표회",
            "as seen on tv",
            // `19금` is listed; its `금` alone is gold and sits inside everyday words.
            "지금 만나보세요",
            "금요일 저녁 요금 안내",
            "현금 대신 금융 앱으로",
            "금반지 선물",
        ] {
            let d = s.screen(ok);
            assert!(d.allowed, "{ok:?} was blocked: {d:?}");
        }
    }

    #[test]
    fn adversarial_spellings_are_caught() {
        let s = scr();
        for bad in [
            "n u d e",
            "p0rn",
            "nak3d",
            "s.e.x",
            "nuuuude",
            "ｎｕｄｅ",
            "n\u{200B}ude",
            "ѕех",
            "ㅅㅔㄱㅅ",
            "섹 스",
            "쎅쓰",
            "ㅅㅂ",
            "ㅆㅂ",
            "ㅄ",
            "시1발",
            "19금 영상",
            "오늘은19금이야",
        ] {
            let d = s.screen(bad);
            assert!(!d.allowed, "{bad:?} passed");
        }
    }
}
