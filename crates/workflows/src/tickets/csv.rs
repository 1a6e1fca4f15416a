//! Reading a campaign's customer CSV the way agencies produce it: UTF-8 with or without a BOM,
//! or CP949/EUC-KR from Korean Excel; a header row whose column names are mapped to ticket
//! fields; and every record kept or refused on its own, with its line number, so one broken
//! quote does not sink ten thousand rows.
//!
//! The parser is ours rather than the `csv` crate's because of that last point: after an
//! unterminated quote a conforming reader swallows the rest of the file into one field. We
//! parse RFC 4180 (quoted fields may span lines), and when a record is malformed we report it
//! and resume at the next physical line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::store::TicketInput;

/// Most data rows in one batch.
pub const MAX_ROWS: usize = 10_000;
/// Longest lifestyle text, in characters.
pub const TEXT_MAX: usize = 2000;
/// Longest customer name, in characters.
pub const NAME_MAX: usize = 40;

/// How a file's bytes were decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "utf-8-bom")]
    Utf8Bom,
    /// Windows code page 949 (a superset of EUC-KR), what Korean Excel writes.
    #[serde(rename = "cp949")]
    Cp949,
}

impl Encoding {
    /// The name in APIs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf8Bom => "utf-8-bom",
            Self::Cp949 => "cp949",
        }
    }
}

/// Why a file (not a row) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is neither UTF-8 nor CP949/EUC-KR text")]
    Encoding,
    #[error("unknown encoding {0:?}: use utf-8, cp949 or euc-kr (or leave it out to detect)")]
    UnknownEncoding(String),
    #[error("no column for {field}: the header has {header:?}; name one with the `{field}` column parameter")]
    MissingColumn { field: String, header: Vec<String> },
    #[error("column {column:?} (for {field}) is not in the header {header:?}")]
    UnknownColumn {
        field: String,
        column: String,
        header: Vec<String>,
    },
    #[error("{rows} data rows; a batch takes at most {MAX_ROWS}")]
    TooManyRows { rows: usize },
    #[error("the header row is malformed: {0}")]
    Header(String),
}

/// Decodes bytes: a UTF-8 BOM wins, then valid UTF-8, then CP949. `forced` names an encoding
/// (`utf-8`, `cp949`, `euc-kr`) instead.
pub fn decode(bytes: &[u8], forced: Option<&str>) -> Result<(String, Encoding), CsvError> {
    if bytes.is_empty() {
        return Err(CsvError::Empty);
    }
    let bom = bytes.starts_with(&[0xEF, 0xBB, 0xBF]);
    let want = match forced.map(|s| s.trim().to_ascii_lowercase()) {
        None => None,
        Some(s) if s == "utf-8" || s == "utf8" => Some(Encoding::Utf8),
        Some(s)
            if ["cp949", "euc-kr", "euckr", "ms949", "windows-949", "uhc"]
                .contains(&s.as_str()) =>
        {
            Some(Encoding::Cp949)
        }
        Some(s) => return Err(CsvError::UnknownEncoding(s)),
    };
    let utf8 = |b: &[u8], enc| {
        std::str::from_utf8(b)
            .map(|s| (s.to_owned(), enc))
            .map_err(|_| CsvError::Encoding)
    };
    match want {
        Some(Encoding::Cp949) => cp949(bytes),
        Some(_) if bom => utf8(&bytes[3..], Encoding::Utf8Bom),
        Some(_) => utf8(bytes, Encoding::Utf8),
        None if bom => utf8(&bytes[3..], Encoding::Utf8Bom),
        None => utf8(bytes, Encoding::Utf8).or_else(|_| cp949(bytes)),
    }
}

fn cp949(bytes: &[u8]) -> Result<(String, Encoding), CsvError> {
    // WHATWG's EUC-KR decoder is Windows-949 (all of UHC's extra syllables).
    let (text, had_errors) = encoding_rs::EUC_KR.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(CsvError::Encoding);
    }
    Ok((text.into_owned(), Encoding::Cp949))
}

/// One physical-line-numbered record, or why it is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line where the record starts.
    pub line: usize,
    pub fields: Result<Vec<String>, String>,
}

/// Splits text into records. Malformed records (an unterminated quote, text after a closing
/// quote) are returned as errors and parsing resumes on the next line.
pub fn records(text: &str) -> Vec<Record> {
    let b = text.as_bytes();
    // Byte offset where each physical line starts.
    let mut starts = vec![0usize];
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' && i + 1 < b.len() {
            starts.push(i + 1);
        }
    }
    let line_of = |pos: usize| starts.partition_point(|s| *s <= pos);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let line = line_of(pos);
        match record_at(text, pos) {
            Ok((fields, next)) => {
                // A blank line is not a record.
                if !(fields.len() == 1 && fields[0].trim().is_empty()) {
                    out.push(Record {
                        line,
                        fields: Ok(fields),
                    });
                }
                pos = next;
            }
            Err(why) => {
                out.push(Record {
                    line,
                    fields: Err(why),
                });
                // Resume on the next physical line.
                pos = starts.get(line).copied().unwrap_or(b.len());
            }
        }
    }
    out
}

/// Parses one record starting at byte `pos`; returns its fields and where the next begins.
fn record_at(text: &str, mut pos: usize) -> Result<(Vec<String>, usize), String> {
    let b = text.as_bytes();
    let mut fields = Vec::new();
    loop {
        let mut field = String::new();
        if b.get(pos) == Some(&b'"') {
            pos += 1;
            let open_at = pos;
            loop {
                match text[pos..].find('"') {
                    None => {
                        return Err(format!(
                            "a quoted field opened here is never closed ({} characters follow)",
                            text[open_at..].chars().count()
                        ))
                    }
                    Some(q) => {
                        field.push_str(&text[pos..pos + q]);
                        pos += q + 1;
                        if b.get(pos) == Some(&b'"') {
                            field.push('"');
                            pos += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            match b.get(pos) {
                None | Some(b',') | Some(b'\n') => {}
                Some(b'\r') if matches!(b.get(pos + 1), None | Some(b'\n')) => {}
                Some(_) => {
                    let rest: String = text[pos..].chars().take(12).collect();
                    return Err(format!(
                        "text after a closing quote ({rest:?}); quotes inside a field are written \"\""
                    ));
                }
            }
        } else {
            let end = text[pos..]
                .find([',', '\n'])
                .map(|i| pos + i)
                .unwrap_or(b.len());
            let raw = text[pos..end].strip_suffix('\r').unwrap_or(&text[pos..end]);
            if raw.contains('"') {
                return Err(format!(
                    "a quote inside an unquoted field ({:?}); quote the whole field",
                    raw.chars().take(24).collect::<String>()
                ));
            }
            field.push_str(raw);
            pos = end;
        }
        fields.push(field);
        match b.get(pos) {
            Some(b',') => pos += 1,
            Some(b'\r') => {
                pos += 1;
                if b.get(pos) == Some(&b'\n') {
                    pos += 1;
                }
                return Ok((fields, pos));
            }
            Some(b'\n') => return Ok((fields, pos + 1)),
            None => return Ok((fields, pos)),
            Some(_) => return Ok((fields, pos)),
        }
    }
}

/// Which header column feeds which ticket field. Unset fields use the first header name found
/// among the usual Korean and English spellings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub tagline: Option<String>,
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub seed: Option<String>,
    #[serde(default)]
    pub show_name: Option<String>,
}

const ALIASES: [(&str, &[&str], bool); 7] = [
    (
        "name",
        &["name", "customer", "이름", "성명", "고객명", "닉네임"],
        true,
    ),
    (
        "text",
        &[
            "text",
            "lifestyle",
            "story",
            "사연",
            "라이프스타일",
            "내용",
            "소개",
        ],
        true,
    ),
    ("title", &["title", "제목", "영화제목"], false),
    ("tagline", &["tagline", "태그라인", "문구", "카피"], false),
    ("preset", &["preset", "프리셋", "디자인"], false),
    ("seed", &["seed", "시드"], false),
    ("show_name", &["show_name", "이름표시", "이름공개"], false),
];

fn norm(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .replace([' ', '_', '-'], "")
}

/// A parsed row: its line and either the ticket input or why it is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub input: Result<TicketInput, RowError>,
}

/// Why a row makes no ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// `invalid` (bad value, malformed record) or `duplicate`.
    pub code: &'static str,
    pub reason: String,
}

impl RowError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self {
            code: "invalid",
            reason: reason.into(),
        }
    }
}

/// A whole file, read.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub encoding: Encoding,
    pub header: Vec<String>,
    /// Column index for each mapped field.
    pub columns: BTreeMap<String, usize>,
    pub rows: Vec<Row>,
}

/// Decodes, parses and validates a customer CSV. Row problems become row errors; only
/// file-level problems are errors.
pub fn parse(bytes: &[u8], encoding: Option<&str>, map: &ColumnMap) -> Result<Parsed, CsvError> {
    let (text, enc) = decode(bytes, encoding)?;
    let mut recs = records(&text).into_iter();
    let header = match recs.next() {
        None => return Err(CsvError::Empty),
        Some(Record { fields: Err(e), .. }) => return Err(CsvError::Header(e)),
        Some(Record { fields: Ok(h), .. }) => h,
    };
    let normed: Vec<String> = header.iter().map(|h| norm(h)).collect();
    let explicit = [
        ("name", &map.name),
        ("text", &map.text),
        ("title", &map.title),
        ("tagline", &map.tagline),
        ("preset", &map.preset),
        ("seed", &map.seed),
        ("show_name", &map.show_name),
    ];
    let mut columns = BTreeMap::new();
    for ((field, aliases, required), (_, given)) in ALIASES.iter().zip(explicit.iter()) {
        let idx = match given {
            Some(col) => Some(normed.iter().position(|h| *h == norm(col)).ok_or_else(|| {
                CsvError::UnknownColumn {
                    field: field.to_string(),
                    column: col.clone(),
                    header: header.clone(),
                }
            })?),
            None => aliases
                .iter()
                .find_map(|a| normed.iter().position(|h| *h == norm(a))),
        };
        match idx {
            Some(i) => {
                columns.insert(field.to_string(), i);
            }
            None if *required => {
                return Err(CsvError::MissingColumn {
                    field: field.to_string(),
                    header,
                })
            }
            None => {}
        }
    }
    let recs: Vec<Record> = recs.collect();
    if recs.len() > MAX_ROWS {
        return Err(CsvError::TooManyRows { rows: recs.len() });
    }
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut rows = Vec::with_capacity(recs.len());
    for r in recs {
        let input = match r.fields {
            Err(why) => Err(RowError::invalid(format!("malformed CSV: {why}"))),
            Ok(f) if f.len() != header.len() => Err(RowError::invalid(format!(
                "malformed CSV: {} fields where the header has {}",
                f.len(),
                header.len()
            ))),
            Ok(f) => row_input(&f, &columns),
        };
        let input = match input {
            Ok(i) => {
                let key = (squash(&i.name), squash(&i.text));
                match seen.get(&key) {
                    Some(first) => Err(RowError {
                        code: "duplicate",
                        reason: format!("same name and text as line {first}"),
                    }),
                    None => {
                        seen.insert(key, r.line);
                        Ok(i)
                    }
                }
            }
            e => e,
        };
        rows.push(Row {
            line: r.line,
            input,
        });
    }
    Ok(Parsed {
        encoding: enc,
        header,
        columns,
        rows,
    })
}

/// Whitespace-insensitive form used to spot duplicate rows.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn row_input(f: &[String], columns: &BTreeMap<String, usize>) -> Result<TicketInput, RowError> {
    let get = |k: &str| {
        columns
            .get(k)
            .and_then(|i| f.get(*i))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let name = get("name").ok_or_else(|| RowError::invalid("name is empty"))?;
    let text = get("text").ok_or_else(|| RowError::invalid("text is empty"))?;
    let check = |field: &str, v: &str, max: usize| {
        let n = v.chars().count();
        if n > max {
            Err(RowError::invalid(format!(
                "{field} is {n} characters; at most {max}"
            )))
        } else {
            Ok(())
        }
    };
    check("name", &name, NAME_MAX)?;
    check("text", &text, TEXT_MAX)?;
    let title = get("title");
    let tagline = get("tagline");
    if let Some(t) = &title {
        check("title", t, atelier_writer::tasks::TITLE_MAX)?;
    }
    if let Some(t) = &tagline {
        check("tagline", t, atelier_writer::tasks::TAGLINE_MAX)?;
    }
    let seed = get("seed")
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| RowError::invalid(format!("seed {s:?} is not a non-negative integer")))
        })
        .transpose()?;
    let show_name = match get("show_name").map(|s| s.to_lowercase()) {
        None => false,
        Some(s) if ["1", "true", "yes", "y", "o", "예", "네", "공개"].contains(&s.as_str()) => {
            true
        }
        Some(s) if ["0", "false", "no", "n", "x", "아니오", "비공개"].contains(&s.as_str()) => {
            false
        }
        Some(s) => {
            return Err(RowError::invalid(format!(
                "show_name {s:?} is not yes or no"
            )))
        }
    };
    Ok(TicketInput {
        name,
        text,
        title,
        tagline,
        preset: get("preset"),
        seed,
        show_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_detected() {
        let s = "이름,사연\n김하늘,주말마다 등산\n";
        assert_eq!(decode(s.as_bytes(), None).unwrap().1, Encoding::Utf8);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(s.as_bytes());
        let (t, e) = decode(&bom, None).unwrap();
        assert_eq!((t.as_str(), e), (s, Encoding::Utf8Bom));
        let (cp, _, _) = encoding_rs::EUC_KR.encode(s);
        assert!(std::str::from_utf8(&cp).is_err());
        let (t, e) = decode(&cp, None).unwrap();
        assert_eq!((t.as_str(), e), (s, Encoding::Cp949));
        // A UHC-only syllable (not in KS X 1001) still decodes.
        let (cp, _, bad) = encoding_rs::EUC_KR.encode("똠방각하");
        assert!(!bad);
        assert_eq!(decode(&cp, Some("cp949")).unwrap().0, "똠방각하");
        assert_eq!(decode(&[0xff, 0xff, 0xff], None), Err(CsvError::Encoding));
    }

    #[test]
    fn quoted_fields_span_lines_and_broken_ones_resync() {
        let t = "a,b\n1,\"two\nlines\"\n2,\"unterminated\n3,ok\n4,\"x\"y\n5,\"say \"\"hi\"\"\"\n";
        let r = records(t);
        let lines: Vec<usize> = r.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 5, 6, 7]);
        assert_eq!(r[1].fields, Ok(vec!["1".into(), "two\nlines".into()]));
        // The stray quote runs into line 6's quote and is refused there; parsing resumes at 4.
        assert!(r[2].fields.is_err(), "{r:?}");
        assert_eq!(r[3].fields, Ok(vec!["3".into(), "ok".into()]));
        assert!(r[4]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("after a closing quote"));
        assert_eq!(r[5].fields, Ok(vec!["5".into(), "say \"hi\"".into()]));
    }

    #[test]
    fn crlf_and_blank_lines() {
        let r = records("a,b\r\n\r\n1,2\r\n\"3\",\"4\"\r\n");
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].line, 3);
        assert_eq!(r[2].fields, Ok(vec!["3".into(), "4".into()]));
    }

    #[test]
    fn rows_are_validated_with_line_numbers() {
        let long = "가".repeat(TEXT_MAX + 1);
        let csv = format!(
            "고객명,사연,제목\n김,매일 달리기,\n이,,\n박,{long},\n김, 매일  달리기 ,\n최,\"책 \"읽기,\n정,요리,{}\n",
            "긴".repeat(30)
        );
        let p = parse(csv.as_bytes(), None, &ColumnMap::default()).expect("parses");
        assert_eq!(p.columns["name"], 0);
        assert_eq!(p.columns["text"], 1);
        assert_eq!(p.columns["title"], 2);
        let codes: Vec<(usize, &str)> = p
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.input.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code),
                )
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                (2, "ok"),
                (3, "invalid"),
                (4, "invalid"),
                (5, "duplicate"),
                (6, "invalid"),
                (7, "invalid")
            ]
        );
        let reason = |i: usize| p.rows[i].input.clone().unwrap_err().reason;
        assert_eq!(reason(1), "text is empty");
        assert!(reason(2).contains("2001 characters"), "{}", reason(2));
        assert_eq!(reason(3), "same name and text as line 2");
        assert!(reason(5).starts_with("title is 30"), "{}", reason(5));
    }

    #[test]
    fn mapping_is_configurable_and_errors_name_the_column() {
        let csv = "Customer Name,Story\n김,등산\n";
        let e = parse(csv.as_bytes(), None, &ColumnMap::default()).unwrap_err();
        assert!(
            matches!(e, CsvError::MissingColumn { ref field, .. } if field == "name"),
            "{e}"
        );
        let e = parse(b"name,text\n\"x,y\n", None, &ColumnMap::default()).expect("parses");
        assert!(e.rows[0]
            .input
            .as_ref()
            .unwrap_err()
            .reason
            .contains("never closed"));
        let map = ColumnMap {
            name: Some("customer name".into()),
            ..ColumnMap::default()
        };
        let p = parse(csv.as_bytes(), None, &map).expect("mapped");
        assert_eq!(p.rows[0].input.as_ref().unwrap().name, "김");
        let map = ColumnMap {
            name: Some("nope".into()),
            ..ColumnMap::default()
        };
        assert!(matches!(
            parse(csv.as_bytes(), None, &map),
            Err(CsvError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn row_limit() {
        let mut s = String::from("name,text\n");
        for i in 0..=MAX_ROWS {
            s.push_str(&format!("n{i},t\n"));
        }
        assert_eq!(
            parse(s.as_bytes(), None, &ColumnMap::default()).unwrap_err(),
            CsvError::TooManyRows { rows: MAX_ROWS + 1 }
        );
    }
}
