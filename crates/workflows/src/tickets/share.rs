//! What leaves the system: the public share page of a ticket (Open Graph and Twitter card tags
//! so a shared link unfurls as the ticket), and a batch's results (a CSV of share links, a ZIP
//! of the tickets). Pure functions; the server supplies URLs and bytes.

use std::io::Write;

use serde_json::Value;

use super::steps::Step;
use super::store::{BatchRow, TicketRecord};

/// Escapes text for HTML element content and double-quoted attributes.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the share page shows: only the ticket's public copy, never the customer's text.
#[derive(Debug, Clone)]
pub struct SharePage<'a> {
    pub title: &'a str,
    pub tagline: &'a str,
    pub brand: &'a str,
    /// Absolute, signed URL of the ticket PNG (for `og:image`, crawlers fetch it unsigned-in).
    pub image_url: &'a str,
    /// Same, with `download=1`.
    pub download_url: &'a str,
    /// Absolute URL of the page itself.
    pub page_url: &'a str,
    pub width: u32,
    pub height: u32,
    /// Visible AI label text, repeated under the image.
    pub label: Option<&'a str>,
}

/// The share page's HTML.
pub fn share_html(p: &SharePage<'_>) -> String {
    let e = html_escape;
    let title = if p.title.is_empty() { p.brand } else { p.title };
    let label = p
        .label
        .map(|l| format!("<p class=\"label\">{} · AI-generated image</p>", e(l)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} · {brand}</title>
<meta name="description" content="{tagline}">
<meta property="og:type" content="website">
<meta property="og:site_name" content="{brand}">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{tagline}">
<meta property="og:url" content="{page}">
<meta property="og:image" content="{image}">
<meta property="og:image:type" content="image/png">
<meta property="og:image:width" content="{w}">
<meta property="og:image:height" content="{h}">
<meta property="og:image:alt" content="{title}">
<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:title" content="{title}">
<meta name="twitter:description" content="{tagline}">
<meta name="twitter:image" content="{image}">
<style>
body{{margin:0;background:#111;color:#eee;font-family:system-ui,-apple-system,"Apple SD Gothic Neo","Noto Sans KR",sans-serif}}
main{{max-width:560px;margin:0 auto;padding:24px 16px 40px;text-align:center}}
img{{max-width:100%;height:auto;border-radius:12px;box-shadow:0 8px 32px #0008}}
h1{{font-size:1.5rem;margin:20px 0 4px}}
p{{margin:4px 0;color:#bbb}}
a.download{{display:inline-block;margin-top:20px;padding:12px 28px;border-radius:999px;background:#fff;color:#111;text-decoration:none;font-weight:700}}
.label{{font-size:.8rem;color:#888;margin-top:16px}}
</style>
</head>
<body>
<main>
<img src="{image}" width="{w}" height="{h}" alt="{title}">
<h1>{title}</h1>
<p>{tagline}</p>
<a class="download" href="{download}" download="ticket.png">티켓 저장 · Download</a>
{label}
</main>
</body>
</html>
"#,
        title = e(title),
        brand = e(p.brand),
        tagline = e(p.tagline),
        page = e(p.page_url),
        image = e(p.image_url),
        download = e(p.download_url),
        w = p.width,
        h = p.height,
        label = label,
    )
}

/// A ticket's published copy and rendered size, from its step records.
pub fn public_copy(t: &TicketRecord) -> (String, String, u32, u32) {
    let out = |s: Step| {
        t.steps
            .iter()
            .find(|r| r.step == s && r.status == "done")
            .map(|r| &r.output)
    };
    let get = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let dim = |k: &str| {
        out(Step::Render)
            .and_then(|v| v.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32
    };
    (
        get(out(Step::Copy), "title"),
        get(out(Step::Copy), "tagline"),
        dim("width"),
        dim("height"),
    )
}

/// Whether the share page shows the ticket: published, not revoked, not failed, and not held
/// back as flagged. During a re-run the last published ticket stays up.
pub fn is_public(t: &TicketRecord) -> bool {
    t.revoked_at.is_none()
        && t.file.is_some()
        && t.status != super::store::TicketStatus::Failed
        && !t
            .steps
            .iter()
            .any(|r| r.step == Step::Publish && r.output["public"] == false)
}

/// One CSV cell, quoted when it must be.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The batch's links CSV, in line order: every row with its ticket's share URL or its error.
/// Starts with a UTF-8 BOM so Korean Excel opens it in the right encoding.
pub fn links_csv(
    rows: &[BatchRow],
    tickets: &[TicketRecord],
    share_url: &dyn Fn(&str) -> String,
) -> String {
    let mut out = String::from("\u{feff}line,name,status,share_url,ticket,error_code,error\r\n");
    for r in rows {
        let t = r
            .ticket_id
            .as_deref()
            .and_then(|id| tickets.iter().find(|t| t.id == id));
        let name = r
            .input
            .as_ref()
            .map(|i| i.name.clone())
            .or_else(|| t.map(|t| t.input.name.clone()))
            .unwrap_or_default();
        let url = match t {
            Some(t) if r.status == "done" && is_public(t) => share_url(&t.share_id),
            _ => String::new(),
        };
        let err = |k: &str| {
            r.error
                .as_ref()
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let reason = match err("category") {
            c if c.is_empty() => err("reason"),
            c => format!("{} ({c})", err("reason")),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            r.line,
            csv_field(&name),
            r.status,
            csv_field(&url),
            r.ticket_id.as_deref().unwrap_or_default(),
            csv_field(&err("code")),
            csv_field(&reason),
        ));
    }
    out
}

/// Writes a ZIP (stored, not deflated: PNGs do not shrink) to a plain `Write`, streaming:
/// entries come from `next` one at a time, so memory holds one ticket.
pub fn write_zip<W: Write>(
    w: W,
    mut next: impl FnMut() -> Option<std::io::Result<(String, Vec<u8>)>>,
) -> std::io::Result<()> {
    let mut z = zip::ZipWriter::new_stream(w);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    while let Some(entry) = next() {
        let (name, bytes) = entry?;
        z.start_file(name, opts).map_err(std::io::Error::other)?;
        z.write_all(&bytes)?;
    }
    // The central directory is the last write; buffered writers must see a flush.
    z.finish().map_err(std::io::Error::other)?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_and_carries_the_card_tags() {
        let html = share_html(&SharePage {
            title: "<script>",
            tagline: "\"따옴표\" & 태그",
            brand: "한빛",
            image_url: "https://x.test/t/abc/ticket.png?exp=1&sig=2",
            download_url: "https://x.test/t/abc/ticket.png?exp=1&sig=2&download=1",
            page_url: "https://x.test/t/abc",
            width: 1080,
            height: 1920,
            label: Some("AI 생성"),
        });
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains(
            r#"<meta property="og:image" content="https://x.test/t/abc/ticket.png?exp=1&amp;sig=2">"#
        ));
        assert!(html.contains(r#"<meta name="twitter:card" content="summary_large_image">"#));
        assert!(html.contains("&quot;따옴표&quot; &amp; 태그"));
    }

    #[test]
    fn zip_streams_to_a_plain_writer() {
        let mut items = vec![
            ("a.png".to_string(), vec![1u8, 2, 3]),
            ("b.csv".into(), b"x".to_vec()),
        ]
        .into_iter();
        let mut buf = Vec::new();
        write_zip(&mut buf, || items.next().map(Ok)).expect("zip");
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(buf)).expect("reads back");
        assert_eq!(z.len(), 2);
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("a.png").expect("entry"), &mut s).expect("read");
        assert_eq!(s, vec![1, 2, 3]);
    }
}
