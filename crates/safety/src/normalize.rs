//! Text normalisation for screening: undoes the tricks people use to slip a word past a
//! filter (width variants, zero-width characters, diacritics, look-alike letters, Hangul
//! typed as loose jamo) while remembering where every normalised character came from, so a
//! decision can point at the span of the original text.

use unicode_normalization::UnicodeNormalization;

/// What kind of character a normalised position holds; matching rules differ per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Latin letter (after folding look-alikes and diacritics).
    Letter,
    /// A digit or symbol that is often used as a letter (`0`, `@`, `$`…).
    Leet,
    /// A Hangul jamo that came out of a precomposed syllable; `start` marks the syllable's
    /// first jamo, so matches cannot begin in the middle of a syllable.
    Syllable { start: bool },
    /// A Hangul jamo the writer typed on its own (`ㅅㅂ`, `ㅅㅔㄱㅅ`).
    Jamo,
    /// `*` written in place of a letter (`p*rn`, `f**k`).
    Mask,
    /// Whitespace: separates words.
    Space,
    /// Anything else (punctuation, other scripts, emoji): dropped inside words.
    Other,
}

/// One normalised character and the original characters it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub ch: char,
    pub kind: Kind,
    /// Index of the original character (in `char`s, not bytes).
    pub origin: usize,
}

/// Characters that render as nothing and are used to split a word invisibly.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

fn combining(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Cyrillic and Greek letters that look like Latin ones, and a few Latin variants.
fn lookalike(c: char) -> Option<char> {
    Some(match c {
        'а' | 'α' => 'a',
        'в' | 'β' | 'ь' => 'b',
        'с' | 'ς' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' | 'ε' | 'є' => 'e',
        'һ' => 'h',
        'і' | 'ї' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'κ' | 'к' => 'k',
        'м' => 'm',
        'η' | 'п' => 'n',
        'о' | 'ο' | 'σ' | 'ө' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' | 'ѵ' => 'v',
        'ω' | 'ш' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' | 'ү' => 'y',
        'ᴢ' => 'z',
        'ß' => 's',
        'ø' => 'o',
        'ł' => 'l',
        'đ' => 'd',
        _ => return None,
    })
}

/// Digits and symbols read as letters. Tokens that mix them with letters are read both ways.
pub fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' | '€' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' | '+' => 't',
        '8' => 'b',
        '9' => 'g',
        '¢' => 'c',
        _ => return None,
    })
}

const L: [char; 19] = [
    'ㄱ', 'ㄲ', 'ㄴ', 'ㄷ', 'ㄸ', 'ㄹ', 'ㅁ', 'ㅂ', 'ㅃ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅉ', 'ㅊ', 'ㅋ',
    'ㅌ', 'ㅍ', 'ㅎ',
];
const V: [char; 21] = [
    'ㅏ', 'ㅐ', 'ㅑ', 'ㅒ', 'ㅓ', 'ㅔ', 'ㅕ', 'ㅖ', 'ㅗ', 'ㅘ', 'ㅙ', 'ㅚ', 'ㅛ', 'ㅜ', 'ㅝ', 'ㅞ',
    'ㅟ', 'ㅠ', 'ㅡ', 'ㅢ', 'ㅣ',
];
const T: [char; 28] = [
    '\0', 'ㄱ', 'ㄲ', 'ㄳ', 'ㄴ', 'ㄵ', 'ㄶ', 'ㄷ', 'ㄹ', 'ㄺ', 'ㄻ', 'ㄼ', 'ㄽ', 'ㄾ', 'ㄿ', 'ㅀ',
    'ㅁ', 'ㅂ', 'ㅄ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅊ', 'ㅋ', 'ㅌ', 'ㅍ', 'ㅎ',
];

/// Splits compound jamo and folds tense consonants onto plain ones (`ㅆ` → `ㅅ`, `ㅄ` → `ㅂㅅ`,
/// `ㅘ` → `ㅗㅏ`), so `씨발`, `ㅆㅂ` and `ㅅㅂ` all meet the same list entry.
fn push_jamo(c: char, out: &mut Vec<char>) {
    let parts: &[char] = match c {
        'ㄲ' => &['ㄱ'],
        'ㄸ' => &['ㄷ'],
        'ㅃ' => &['ㅂ'],
        'ㅆ' => &['ㅅ'],
        'ㅉ' => &['ㅈ'],
        'ㄳ' => &['ㄱ', 'ㅅ'],
        'ㄵ' => &['ㄴ', 'ㅈ'],
        'ㄶ' => &['ㄴ', 'ㅎ'],
        'ㄺ' => &['ㄹ', 'ㄱ'],
        'ㄻ' => &['ㄹ', 'ㅁ'],
        'ㄼ' => &['ㄹ', 'ㅂ'],
        'ㄽ' => &['ㄹ', 'ㅅ'],
        'ㄾ' => &['ㄹ', 'ㅌ'],
        'ㄿ' => &['ㄹ', 'ㅍ'],
        'ㅀ' => &['ㄹ', 'ㅎ'],
        'ㅄ' => &['ㅂ', 'ㅅ'],
        'ㅘ' => &['ㅗ', 'ㅏ'],
        'ㅙ' => &['ㅗ', 'ㅐ'],
        'ㅚ' => &['ㅗ', 'ㅣ'],
        'ㅝ' => &['ㅜ', 'ㅓ'],
        'ㅞ' => &['ㅜ', 'ㅔ'],
        'ㅟ' => &['ㅜ', 'ㅣ'],
        'ㅢ' => &['ㅡ', 'ㅣ'],
        _ => {
            out.push(c);
            return;
        }
    };
    out.extend_from_slice(parts);
}

/// Maps conjoining (U+1100) jamo onto the compatibility block (U+3131) writers type.
fn conjoining_to_compat(c: char) -> Option<char> {
    let u = c as u32;
    match u {
        0x1100..=0x1112 => Some(L[(u - 0x1100) as usize]),
        0x1161..=0x1175 => Some(V[(u - 0x1161) as usize]),
        0x11A8..=0x11C2 => Some(T[(u - 0x11A7) as usize]),
        _ => None,
    }
}

fn is_compat_jamo(c: char) -> bool {
    ('\u{3131}'..='\u{318E}').contains(&c)
}

/// Normalises `text` into units: NFKC/NFKD folding, lower case, no invisible characters,
/// no diacritics, Latin look-alikes folded, Hangul decomposed to (simplified) jamo.
pub fn normalize(text: &str) -> Vec<Unit> {
    let mut out = Vec::with_capacity(text.len());
    let mut jamo = Vec::with_capacity(4);
    for (origin, c) in text.chars().enumerate() {
        if invisible(c) {
            continue;
        }
        let u = c as u32;
        if (0xAC00..=0xD7A3).contains(&u) {
            let s = u - 0xAC00;
            jamo.clear();
            push_jamo(L[(s / 588) as usize], &mut jamo);
            push_jamo(V[((s % 588) / 28) as usize], &mut jamo);
            let t = T[(s % 28) as usize];
            if t != '\0' {
                push_jamo(t, &mut jamo);
            }
            for (i, &j) in jamo.iter().enumerate() {
                out.push(Unit {
                    ch: j,
                    kind: Kind::Syllable { start: i == 0 },
                    origin,
                });
            }
            continue;
        }
        if let Some(j) = conjoining_to_compat(c).or(is_compat_jamo(c).then_some(c)) {
            jamo.clear();
            push_jamo(j, &mut jamo);
            for &j in &jamo {
                out.push(Unit {
                    ch: j,
                    kind: Kind::Jamo,
                    origin,
                });
            }
            continue;
        }
        for d in std::iter::once(c).nfkd() {
            if combining(d) || invisible(d) {
                continue;
            }
            for l in d.to_lowercase() {
                let l = lookalike(l).unwrap_or(l);
                let kind = if l.is_whitespace() {
                    Kind::Space
                } else if l.is_ascii_lowercase() {
                    Kind::Letter
                } else if l == '*' {
                    Kind::Mask
                } else if leet(l).is_some() {
                    Kind::Leet
                } else if l.is_alphabetic() {
                    // Other scripts: kept as letters of their own so words stay whole.
                    Kind::Letter
                } else {
                    Kind::Other
                };
                out.push(Unit {
                    ch: if kind == Kind::Space { ' ' } else { l },
                    kind,
                    origin,
                });
            }
        }
    }
    out
}

/// Normalises a list entry the same way as screened text, for comparison.
pub fn normalize_term(term: &str) -> String {
    normalize(term).into_iter().map(|u| u.ch).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> String {
        normalize_term(t)
    }

    #[test]
    fn folds_width_case_diacritics_and_lookalikes() {
        assert_eq!(s("ＮＵＤＥ"), "nude");
        assert_eq!(s("Nüdé"), "nude");
        assert_eq!(s("рorn"), "porn"); // Cyrillic р
        assert_eq!(s("ѕех"), "sex"); // Cyrillic ѕ, е, х
        assert_eq!(s("n\u{200B}u\u{200D}de"), "nude");
    }

    #[test]
    fn hangul_decomposes_to_simplified_jamo_with_syllable_starts() {
        assert_eq!(s("섹스"), "ㅅㅔㄱㅅㅡ");
        assert_eq!(s("쎅쓰"), "ㅅㅔㄱㅅㅡ");
        assert_eq!(s("ㅄ"), "ㅂㅅ");
        let u = normalize("분석");
        let starts: Vec<bool> = u
            .iter()
            .map(|u| matches!(u.kind, Kind::Syllable { start: true }))
            .collect();
        assert_eq!(starts, [true, false, false, true, false, false]);
        assert!(normalize("ㅅㅂ").iter().all(|u| u.kind == Kind::Jamo));
        // Conjoining jamo (as some IMEs emit) meet the compatibility form.
        assert_eq!(s("\u{1109}\u{1166}\u{11A8}"), "ㅅㅔㄱ");
    }

    #[test]
    fn origins_point_at_original_characters() {
        let u = normalize("a\u{200B}섹");
        assert_eq!(u[0].origin, 0);
        assert!(u[1..].iter().all(|u| u.origin == 2));
    }
}
