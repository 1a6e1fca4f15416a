//! Word lists: the data files under `lists/` (format in `lists/README.md`) compiled into
//! terms the screener can match.

use crate::normalize::{normalize, Kind};
use crate::SafetyError;

/// Categories the shipped lists use, most severe first. Policies may add their own.
pub const CATEGORIES: [&str; 8] = [
    "minors",
    "deepfake",
    "sexual",
    "self_harm",
    "violence",
    "hate",
    "drugs",
    "profanity",
];

/// Severity rank of a category (lower is more severe); custom categories rank last.
pub fn severity(category: &str) -> usize {
    CATEGORIES
        .iter()
        .position(|c| *c == category)
        .unwrap_or(CATEGORIES.len())
}

/// What a list entry does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Blocks in this category.
    Deny(String),
    /// Masks deny matches that lie inside it (`murder of crows`, `시발점`).
    Allow,
    /// Harmless alone; turns a sexual match into `minors` (`child`, `초등학생`).
    Minor,
    /// A real person's name; turns a sexual, violent or deepfake match into `deepfake`.
    Person,
    /// One side of a combination rule: harmless alone, denied together with the other side.
    Part { rule: usize, side: u8 },
}

/// A combination rule: any term of side A together with any of side B means `category`
/// (`blood` + `corpse`, `cut` + `wrists`). `minor_b` lets side B be "a minor is mentioned".
#[derive(Debug, Clone)]
pub struct Combo {
    pub category: String,
    pub text: String,
    pub minor_b: bool,
    pub source: String,
}

/// Script-specific shape of a compiled term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Latin (or other alphabetic) words, matched whole; `prefix` when written with a
    /// trailing `*`.
    Words { words: Vec<Vec<char>>, prefix: bool },
    /// Hangul, matched as jamo from a syllable start; words separated by spaces must appear
    /// in consecutive words of the text.
    Hangul { words: Vec<Vec<char>> },
    /// Loose jamo only (`ㅅㅂ`): matched only where the writer typed loose jamo, so the
    /// initials of real words (`분석` → ㅂㅅ) never match.
    Jamo { chars: Vec<char> },
}

/// One compiled list entry.
#[derive(Debug, Clone)]
pub struct Term {
    /// The entry as written in the list.
    pub text: String,
    pub role: Role,
    pub shape: Shape,
    /// Where it came from (`lists/en.txt:12`, `policy`), for audit and debugging.
    pub source: String,
}

impl Term {
    /// Compiles one entry; `None` for entries that normalise to nothing.
    pub fn compile(text: &str, role: Role, source: String) -> Option<Self> {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(b) => (b, true),
            None => (text, false),
        };
        let units = normalize(body);
        let hangul = units
            .iter()
            .any(|u| matches!(u.kind, Kind::Syllable { .. } | Kind::Jamo));
        let shape = if hangul {
            if units
                .iter()
                .all(|u| matches!(u.kind, Kind::Jamo | Kind::Space))
            {
                Shape::Jamo {
                    chars: units
                        .iter()
                        .filter(|u| u.kind == Kind::Jamo)
                        .map(|u| u.ch)
                        .collect(),
                }
            } else {
                // Digits stay: `19금` must not shrink to `금` (gold, and inside 지금, 요금,
                // 금요일, 금융), which would block ordinary Korean everywhere.
                let words = units
                    .split(|u| u.kind == Kind::Space)
                    .map(|w| {
                        w.iter()
                            .filter(|u| {
                                matches!(u.kind, Kind::Syllable { .. } | Kind::Jamo)
                                    || (u.kind == Kind::Leet && u.ch.is_ascii_digit())
                            })
                            .map(|u| u.ch)
                            .collect::<Vec<_>>()
                    })
                    .filter(|w| !w.is_empty())
                    .collect();
                Shape::Hangul { words }
            }
        } else {
            let words: Vec<Vec<char>> = units
                .split(|u| matches!(u.kind, Kind::Space | Kind::Other))
                .map(|w| w.iter().map(|u| u.ch).collect::<Vec<_>>())
                .filter(|w| !w.is_empty())
                .collect();
            Shape::Words { words, prefix }
        };
        let empty = match &shape {
            Shape::Words { words, .. } | Shape::Hangul { words } => words.is_empty(),
            Shape::Jamo { chars } => chars.is_empty(),
        };
        (!empty).then(|| Self {
            text: text.to_owned(),
            role,
            shape,
            source,
        })
    }
}

/// A parsed list file.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub terms: Vec<Term>,
    pub combos: Vec<Combo>,
}

/// Parses a list file: `[section]` headers (a category, `allow`, `context:minor`,
/// `context:person`, `combo:<category>`), one entry per line, `#` comments. Combination
/// rules are numbered from `first_rule`.
pub fn parse(name: &str, text: &str, first_rule: usize) -> Result<Parsed, SafetyError> {
    let mut role: Option<Role> = None;
    let mut combo_cat: Option<String> = None;
    let mut out = Vec::new();
    let mut combos: Vec<Combo> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{name}:{}", i + 1);
        if let Some(sec) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let sec = sec.trim();
            combo_cat = None;
            if let Some(c) = sec.strip_prefix("combo:") {
                if !valid_category(c) {
                    return Err(SafetyError::List {
                        at: at(),
                        message: format!("bad combo category {c:?}"),
                    });
                }
                combo_cat = Some(c.to_owned());
                role = None;
                continue;
            }
            role = Some(match sec {
                "allow" => Role::Allow,
                "context:minor" => Role::Minor,
                "context:person" => Role::Person,
                c if valid_category(c) => Role::Deny(c.to_owned()),
                other => {
                    return Err(SafetyError::List {
                        at: at(),
                        message: format!(
                            "unknown section [{other}]; use a category ({}), allow, \
                             context:minor or context:person",
                            CATEGORIES.join(", ")
                        ),
                    })
                }
            });
            continue;
        }
        if let Some(cat) = &combo_cat {
            let Some((a, b)) = line.split_once(" + ") else {
                return Err(SafetyError::List {
                    at: at(),
                    message: "a combo line is `a|b|c + d|e|f`".into(),
                });
            };
            let rule = first_rule + combos.len();
            let mut minor_b = false;
            for (side, group) in [(0u8, a), (1u8, b)] {
                for t in group.split('|').map(str::trim).filter(|t| !t.is_empty()) {
                    if t == "$minor" && side == 1 {
                        minor_b = true;
                        continue;
                    }
                    if let Some(t) = Term::compile(t, Role::Part { rule, side }, at()) {
                        out.push(t);
                    }
                }
            }
            combos.push(Combo {
                category: cat.clone(),
                text: line.to_owned(),
                minor_b,
                source: at(),
            });
            continue;
        }
        let Some(r) = role.clone() else {
            return Err(SafetyError::List {
                at: at(),
                message: "entry before any [section] header".into(),
            });
        };
        if let Some(t) = Term::compile(line, r, at()) {
            out.push(t);
        }
    }
    Ok(Parsed { terms: out, combos })
}

/// A category name: lower-case ASCII letters, digits and `_`.
pub fn valid_category(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 40
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

/// The lists shipped in the binary.
pub const BUILTIN: [(&str, &str); 2] = [
    ("lists/en.txt", include_str!("../lists/en.txt")),
    ("lists/ko.txt", include_str!("../lists/ko.txt")),
];
